"""On-disk layout of a training-set folder (:mod:`skinseg.train.trainset`): the manifest,
pair folders written whole or not at all, backups, clean-up after a crash, and the
reports of what a set holds and what an add or a remove did."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write
from skinseg.io.labels import write_labels
from skinseg.io.ome import write_image

FORMAT = "skinseg-training-set"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAIRS = "pairs"
BACKUPS = "backups"
IMAGE_FILE = "image.ome.tif"
LABELS_FILE = "labels.ome.tif"
RECORD_FILE = "pair.json"
TMP_PREFIX = ".tmp-"


def _damaged(folder: Path, what: str) -> SkinsegInputError:
    return SkinsegInputError(
        f"{folder}: damaged training set: {what}. Restore the file from a copy (older pairs are "
        f"kept in {BACKUPS}/), or start a new training set in another folder."
    )


def unknown_pairs(folder: Path, unknown: Sequence[str], known: Sequence[str]) -> SkinsegInputError:
    """The error for pair ids ``unknown`` that the set in ``folder`` (pairs ``known``) lacks."""
    listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    return SkinsegInputError(
        f"{folder}: no pair {', '.join(unknown)} in this training set; its pairs are "
        f"{listed or 'none (it is empty)'}. `skinseg trainset info` lists them with their sources."
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``, checked for the fields every set has."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SkinsegInputError(f"{folder}: no such training-set folder; create one with `skinseg trainset add`.")
    if not path.is_file():
        raise SkinsegInputError(
            f"{folder}: not a training set (no {MANIFEST}); pick the folder that holds {MANIFEST}, "
            "or create a new set there."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, not {FORMAT!r}")
        if int(manifest["version"]) > FORMAT_VERSION:
            raise SkinsegInputError(
                f"{folder}: training set of format version {manifest['version']}; this skinseg reads up to "
                f"{FORMAT_VERSION}. Update napari-skinseg."
            )
        ClassTable.from_dict(manifest["class_table"])
        if manifest["modality"] not in ("oct", "rgb") or not isinstance(manifest["pairs"], list):
            raise ValueError("bad modality or pair list")
    except SkinsegInputError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise _damaged(folder, f"{MANIFEST} is unreadable ({e})") from e
    for record in manifest["pairs"]:
        pair = folder / PAIRS / str(record.get("id"))
        if not ((pair / IMAGE_FILE).is_file() and (pair / LABELS_FILE).is_file()):
            raise _damaged(folder, f"{MANIFEST} names pair {record.get('id')!r} but {pair} is missing or incomplete")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Rewrite the manifest atomically (the last step of every change)."""
    text = json.dumps(manifest)  # one line: the C encoder, fast for sets of thousands of pairs
    with atomic_write(folder / MANIFEST, "w") as fh:
        fh.write(text)


def clean_up(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """After a crash: remove half-written temporaries and move pair folders the manifest
    does not name to ``backups/``; returns what was done, one line each."""
    done = []
    for tmp in [*(folder / PAIRS).glob(f"{TMP_PREFIX}*"), *folder.glob(f".{MANIFEST}.*.tmp")]:
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        done.append(f"removed half-written {tmp.name}")
    named = {str(r["id"]) for r in manifest["pairs"]}
    for pair in sorted((folder / PAIRS).glob("*")):
        if pair.is_dir() and pair.name not in named:
            done.append(f"moved unlisted pair {pair.name} to {back_up(folder, pair.name).relative_to(folder)}")
    return done


def write_pair(
    folder: Path,
    record: dict[str, Any],
    image: np.ndarray,
    labels: np.ndarray,
    *,
    rgb: bool,
    class_table: ClassTable,
) -> Path:
    """Write one pair as ``pairs/<id>/`` (image, labels, record), whole or not at all."""
    pairs = folder / PAIRS
    pairs.mkdir(exist_ok=True)
    tmp = pairs / f"{TMP_PREFIX}{record['id']}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        sizes = pixel_sizes(record, labels.ndim)
        write_image(tmp / IMAGE_FILE, image, pixel_size_um=sizes, rgb=rgb)
        write_labels(tmp / LABELS_FILE, labels, pixel_size_um=sizes, class_table=class_table)
        with atomic_write(tmp / RECORD_FILE, "w") as fh:
            json.dump(record, fh, indent=1)
        final = pairs / record["id"]
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def pixel_sizes(record: dict[str, Any], ndim: int) -> tuple[float, ...]:
    """µm per axis of a stored pair of ``ndim`` dimensions: 1 across slices, 1 where unknown."""
    return (1.0,) * (ndim - 2) + tuple(record["pixel_size_um"] or (1.0, 1.0))


def read_pair(folder: Path, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels) of a stored pair, checked against its record."""
    pair = folder / PAIRS / record["id"]
    try:
        image = tifffile.imread(pair / IMAGE_FILE)
        labels = tifffile.imread(pair / LABELS_FILE)
    except Exception as e:  # noqa: BLE001 - any damage means the same to the user
        raise _damaged(folder, f"pair {pair.name} cannot be read ({e})") from e
    if list(labels.shape) != list(record["shape"]) or image.shape[: labels.ndim] != labels.shape:
        raise _damaged(folder, f"pair {pair.name} holds arrays of shape {image.shape} / {labels.shape}, "
                               f"the manifest says {record['shape']}")
    return image, labels


def back_up(folder: Path, pair_id: str) -> Path:
    """Move ``pairs/<id>`` to ``backups/<id>-<time>`` (a rename: nothing is copied or lost)."""
    backups = folder / BACKUPS
    backups.mkdir(exist_ok=True)
    target = backups / f"{pair_id}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
    os.rename(folder / PAIRS / pair_id, target)
    return target


def near(indices: Sequence[int], annotated: Sequence[int], context: int) -> np.ndarray:
    """Mask of ``indices`` within ``context`` slices of an annotated one."""
    idx, ann = np.asarray(indices), np.asarray(annotated)
    if ann.size == 0:
        return np.zeros(idx.shape, bool)
    return np.abs(idx[:, None] - ann[None, :]).min(axis=1) <= context


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``"0-2, 5, 7-8"``."""
    idx = np.unique(np.asarray(indices, dtype=int))
    if idx.size == 0:
        return "none"
    runs = np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1)
    return ", ".join(f"{r[0]}" if r.size == 1 else f"{r[0]}-{r[-1]}" for r in runs)


@dataclass(frozen=True)
class AddReport:
    """What one add (or an import, the sum of its adds) did to a training set.

    Attributes
    ----------
    folder, added
        The set, and the ids of the pairs written.
    slices, skipped
        Annotated slices stored; slices left out for want of labels.
    replaced, backups
        Slices that replaced ones added before; where the old pairs went.
    notes
        Anything else worth telling the user.
    """

    folder: Path
    added: tuple[str, ...] = ()
    slices: int = 0
    skipped: int = 0
    replaced: int = 0
    backups: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    def __add__(self, other: AddReport) -> AddReport:
        return AddReport(
            self.folder, self.added + other.added, self.slices + other.slices, self.skipped + other.skipped,
            self.replaced + other.replaced, self.backups + other.backups, self.notes + other.notes,
        )

    def __str__(self) -> str:
        lines = [f"{self.folder}: added {self.slices} annotated slice(s) in {len(self.added)} pair(s)"
                 + (f", left out {self.skipped} slice(s) without labels" if self.skipped else "")]
        if self.replaced:
            lines.append(f"replaced {self.replaced} slice(s) added before; old pairs kept in "
                         f"{', '.join(p.name for p in self.backups)} under {BACKUPS}/")
        return "\n".join(lines + list(self.notes))


@dataclass(frozen=True)
class RemoveReport:
    """What a remove did: the set, the ids of the pairs taken out, their annotated slices,
    and where the pair folders went (under ``backups/``)."""

    folder: Path
    removed: tuple[str, ...] = ()
    slices: int = 0
    backups: tuple[Path, ...] = ()

    def __str__(self) -> str:
        if not self.removed:
            return f"{self.folder}: nothing removed"
        return (f"{self.folder}: removed {len(self.removed)} pair(s) ({', '.join(self.removed)}) with "
                f"{self.slices} annotated slice(s); kept in {self.folder / BACKUPS}: "
                + ", ".join(p.name for p in self.backups))


@dataclass(frozen=True)
class TrainingSetInfo:
    """What a training set holds (from its manifest): pairs, annotated slices, sources,
    pixels per class name, the median pixel size (rows, columns) in µm of the pairs
    whose size is known (None if none is), and each pair's (id, source, annotated slice
    indices), listed by :meth:`pair_lines`."""

    folder: Path
    modality: str
    class_table: ClassTable
    n_pairs: int
    n_slices: int
    n_sources: int
    pixels_per_class: dict[str, int]
    pixel_size_um: tuple[float, float] | None
    context: int = 0
    pairs: tuple[tuple[str, str, tuple[int, ...]], ...] = ()

    def pair_lines(self) -> list[str]:
        """One line per pair: id, annotated slices, source (the ids ``remove`` takes)."""
        return [f"  {pair_id}  slice(s) {index_ranges(annotated)}  {source}"
                for pair_id, source, annotated in self.pairs]

    def __str__(self) -> str:
        size = "unknown" if self.pixel_size_um is None else " × ".join(f"{s:g}" for s in self.pixel_size_um) + " µm"
        total = max(1, sum(self.pixels_per_class.values()))
        width = max(len(n) for n in self.pixels_per_class)
        rows = [f"  {name:<{width}}  {n:>12,d}  {100 * n / total:5.1f} %" for name, n in self.pixels_per_class.items()]
        return "\n".join([
            f"training set {self.folder}",
            f"  modality {self.modality}, classes '{self.class_table.name}'"
            + (f", {self.context} context slice(s) each side" if self.context else ""),
            f"  {self.n_slices} annotated slice(s) in {self.n_pairs} pair(s) from {self.n_sources} source(s)",
            f"  pixel size (rows × columns): {size}",
            "  pixels per class:", *rows,
        ])
