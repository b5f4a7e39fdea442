"""Training sets on disk: a folder that grows as annotated slices are added.

Folder layout::

    my_set/
        manifest.json           format and version, modality ("oct" or "rgb"), channels,
                                class table, context slices, and one record per pair:
                                id, source, slice indices (stored and annotated), shape,
                                slice pixel size (rows, columns in µm; null if unknown),
                                pixels per class, date added, skinseg version, and any
                                provenance given (e.g. image and mask file names)
        pairs/p0001/            one folder per add, written whole or not at all
            image.ome.tif       the annotated slices of the image (OME-TIFF, µm pixel size)
            labels.ome.tif      their labels (OME-TIFF with the class table)
            pair.json           the pair's manifest record
        backups/p0001-<time>/   pairs replaced by a later add of the same source and slice,
                                or taken out with :meth:`TrainingSet.remove`

Only annotated slices are stored: a slice counts when it holds any non-zero label
(DESIGN.md). A set made with ``context=k`` also keeps the ``k`` B-scans on each side of
an annotated one (labels 0) so a model with neighbour channels can train on it.

Every change is atomic: a pair is written into a temporary folder and renamed into
place, then the manifest is rewritten atomically, last. A crash leaves the previous set
intact; :meth:`TrainingSet.open` removes temporaries and moves unlisted pair folders to
``backups/``. Adding the same source and slice again replaces the old slice and keeps the
old pair under ``backups/``; nothing is overwritten without a backup. Removing pairs
rewrites the manifest, then moves their folders to ``backups/`` (``open`` ends the move).
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from skinseg import __version__
from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import as_pixel_sizes, pixel_sizes_differ
from skinseg.io.image_data import ImageData
from skinseg.models.files import ModelInfo
from skinseg.train import _trainset_store as store
from skinseg.train._trainset_store import AddReport, RemoveReport, TrainingSetInfo
from skinseg.train.dataset import InMemorySlices, SliceKey, annotated_slices, slices_from_pairs

PIXEL_SIZE_TOLERANCE = 1.5
"""A pair whose pixels differ from the set's by more than this factor on an axis is refused."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _unwrap(image: Any, pixel_size_um: Any, source: str) -> tuple[Any, Any, bool, str]:
    """(array, pixel size or None, colour flag, source) of an array or :class:`ImageData`;
    lazy arrays stay lazy (only the stored slices are read)."""
    if isinstance(image, ImageData):
        known = image.pixel_size_um if image.pixel_size_known else None
        return image.data, pixel_size_um or known, image.rgb, source or image.source
    return image if hasattr(image, "shape") else np.asarray(image), pixel_size_um, False, source


def _slice_pixel_size(value: float | Sequence[float], ndim: int, name: str) -> tuple[float, float]:
    """µm per (row, column) of a slice, from one number, one per axis, or (rows, columns)."""
    if not np.isscalar(value) and ndim == 3 and len(value) == 2:
        ndim = 2  # a stack given its slices' pixel size
    rows, cols = as_pixel_sizes(value, ndim, name)[-2:]
    return rows, cols


def is_training_set(folder: str | Path) -> bool:
    """Whether ``folder`` holds a training set (a manifest; not checked further)."""
    return (Path(folder) / store.MANIFEST).is_file()


class TrainingSet:
    """A training-set folder (module docstring); make one with :meth:`create` or :meth:`open`."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self._manifest = manifest

    @property
    def class_table(self) -> ClassTable:
        return ClassTable.from_dict(self._manifest["class_table"])

    @property
    def modality(self) -> str:
        return str(self._manifest["modality"])

    @property
    def context(self) -> int:
        return int(self._manifest.get("context", 0))

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """The manifest's pair records (copies)."""
        return [dict(r) for r in self._manifest["pairs"]]

    @classmethod
    def create(
        cls, folder: str | Path, class_table: ClassTable, *, modality: str, context: int = 0
    ) -> TrainingSet:
        """A new, empty set in ``folder`` (created if needed; must not hold a set already).

        ``modality`` is ``"oct"`` (grey B-scans and tomograms) or ``"rgb"`` (colour images);
        ``context`` is how many unannotated B-scans to keep each side of an annotated one.
        """
        folder = Path(folder)
        if modality not in ("oct", "rgb"):
            raise SkinsegInputError(f"{folder}: modality must be 'oct' or 'rgb', not {modality!r}.")
        if (folder / store.MANIFEST).exists():
            raise SkinsegInputError(f"{folder}: already holds a training set; open it instead.")
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": store.FORMAT, "version": store.FORMAT_VERSION, "modality": modality,
            "channels": 3 if modality == "rgb" else 1, "class_table": class_table.to_dict(),
            "context": int(context) if modality == "oct" else 0, "created": _now(),
            "skinseg_version": __version__, "next_id": 1, "pairs": [],
        }
        store.write_manifest(folder, manifest)
        return cls(folder, manifest)

    @classmethod
    def open(cls, folder: str | Path) -> TrainingSet:
        """Open the set in ``folder``, tidying up after an interrupted add or remove.

        Raises
        ------
        SkinsegInputError
            When the folder is missing, holds no set, or its manifest is not JSON or
            names a pair that is missing.
        """
        folder = Path(folder)
        manifest = store.read_manifest(folder)
        for line in store.clean_up(folder, manifest):
            warnings.warn(f"{folder}: {line} (left by an interrupted add or remove)", stacklevel=2)
        return cls(folder, manifest)

    @classmethod
    def open_or_create(
        cls, folder: str | Path, class_table: ClassTable, *, modality: str, context: int = 0
    ) -> TrainingSet:
        """Open the set in ``folder`` if there is one (it must have these classes and
        modality), else create it."""
        if not is_training_set(folder):
            return cls.create(folder, class_table, modality=modality, context=context)
        found = cls.open(folder)
        if found.class_table != class_table or found.modality != modality:
            raise SkinsegInputError(
                f"{folder}: this training set holds {found.modality} images with classes "
                f"'{found.class_table.name}', not {modality} with '{class_table.name}'; use another folder."
            )
        return found

    # -- adding ---------------------------------------------------------------------------

    def add(
        self,
        image: Any,
        labels: Any,
        *,
        pixel_size_um: float | Sequence[float] | None = None,
        source: str = "",
        slices: Iterable[int] | None = None,
        index: int | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> AddReport:
        """Store the annotated slices of one (image, labels) pair.

        Parameters
        ----------
        image
            Array or :class:`ImageData`: B-scan ``(depth, width)``, tomogram ``(n, depth,
            width)``, or colour ``(height, width, 3)`` (or a stack of those).
        labels
            Class values of the set's table, the image's spatial shape.
        pixel_size_um
            µm per spatial axis (one number or one per axis); default the ImageData's.
        source
            File or layer name. Adding the same source and slice again replaces the slice
            (the old pair goes to ``backups/``); an empty source never replaces.
        slices
            Only these slice indices of a tomogram (e.g. the current B-scan); ignored for
            a single B-scan or image.
        index
            A single B-scan's number within ``source`` (e.g. a folder of B-scans): re-adding
            it replaces it, and the validation split keeps neighbours together.
        provenance
            Extra JSON fields for the pair's record (e.g. the file names).

        Raises
        ------
        SkinsegInputError
            Shapes that differ, label values outside the class table, colour into an OCT
            set (or grey into a colour set), NaN pixels, or a pixel size far from the set's.
        """
        self._manifest = store.read_manifest(self.folder)  # another window or process may have added
        image, pixel_size_um, rgb, source = _unwrap(image, pixel_size_um, source)
        labels = np.asarray(labels.data if isinstance(labels, ImageData) else labels)
        name = source or "image"
        self._check(image, labels, rgb, name)
        stack = labels.ndim == 3
        sizes = None if pixel_size_um is None else _slice_pixel_size(pixel_size_um, labels.ndim, name)
        self._check_pixel_size(sizes, name)
        n_total = labels.shape[0] if stack else 1
        chosen = stack and slices is not None
        wanted = np.unique(np.asarray(list(slices), dtype=int)) if chosen else np.arange(n_total)
        annotated = np.intersect1d(annotated_slices(labels), wanted)
        skipped = int(wanted.size - annotated.size)
        if annotated.size == 0:
            return AddReport(self.folder, skipped=skipped, notes=(f"{name}: no annotated slice, nothing added",))
        if stack:
            keep = np.flatnonzero(store.near(np.arange(n_total), annotated, self.context))
            stored_image = np.stack([np.asarray(image[i]) for i in keep])
            stored_labels = np.where(np.isin(keep, annotated)[:, None, None], labels[keep], 0)
            original = keep
        else:
            stored_image, stored_labels, original = np.asarray(image), labels, np.array([index or 0])
        if stored_image.dtype.kind == "f" and not np.isfinite(stored_image).all():
            raise SkinsegInputError(f"{name}: the image holds NaN or infinite values; fix them first.")
        annotated_original = original[np.isin(keep, annotated)] if stack else original
        record = self._record(source or f"unnamed {self._manifest['next_id']}", original, annotated_original,
                              stored_labels, sizes, dict(provenance or {}))
        report = self._store(record, stored_image, stored_labels)
        return replace(report, slices=int(annotated.size), skipped=skipped)

    def _check(self, image: Any, labels: np.ndarray, rgb: bool, name: str) -> None:
        colour = rgb or (image.ndim == labels.ndim + 1 and image.shape[-1] == 3)
        if colour != (self.modality == "rgb"):
            kind = "a colour (RGB) image" if colour else "a grey image"
            raise SkinsegInputError(
                f"{name}: {kind} cannot join the {self.modality} training set {self.folder}; "
                "use a separate set for each kind of image."
            )
        if (image.shape[:-1] if colour else image.shape) != labels.shape or labels.ndim not in (2, 3):
            raise SkinsegInputError(
                f"{name}: image {image.shape} and labels {labels.shape} do not match; labels must cover "
                "the image pixel for pixel, as (height, width) or (n_slices, height, width)."
            )
        if labels.dtype.kind not in "uib":
            raise SkinsegInputError(f"{name}: labels are {labels.dtype}; labels must be whole class values.")
        unknown = np.setdiff1d(np.unique(labels), self.class_table.values)
        if unknown.size:
            raise SkinsegInputError(
                f"{name}: labels hold values {unknown.tolist()} that the class table "
                f"'{self.class_table.name}' of {self.folder} lacks (it has {self.class_table.values}); relabel them."
            )

    def _check_pixel_size(self, sizes: tuple[float, float] | None, name: str) -> None:
        reference = self.info().pixel_size_um
        if sizes is None or reference is None:
            return
        if pixel_sizes_differ(sizes, reference, PIXEL_SIZE_TOLERANCE):
            raise SkinsegInputError(
                f"{name}: pixels of {sizes} µm (rows, columns) are far from the "
                f"{reference} µm of the training set {self.folder}; resample the image, correct its "
                "pixel size, or start a separate set."
            )

    def _record(self, source: str, original: np.ndarray, annotated: np.ndarray, labels: np.ndarray,
                sizes: tuple[float, float] | None, extra: dict[str, Any]) -> dict[str, Any]:
        counts = np.bincount(labels.ravel(), minlength=max(self.class_table.values) + 1)
        return {
            "id": f"p{self._manifest['next_id']:04d}", "source": source,
            "slices": original.tolist(), "annotated": annotated.tolist(),
            "shape": list(labels.shape),
            "pixel_size_um": None if sizes is None else list(sizes),
            "class_pixels": {str(v): int(counts[v]) for v in self.class_table.values},
            "added": _now(), "skinseg_version": __version__, **extra,
        }

    def _store(self, record: dict[str, Any], image: np.ndarray, labels: np.ndarray) -> AddReport:
        """Write a pair, rewrite the manifest without the slices it replaces, then back up
        the replaced pairs; an old pair keeping some slices is written again without them."""
        self._manifest["next_id"] += 1
        store.write_pair(self.folder, record, image, labels, rgb=self.modality == "rgb", class_table=self.class_table)
        taken = set(record["annotated"])
        keep, written, gone, replaced = [], [record], [], 0
        for old in self._manifest["pairs"]:
            overlap = taken & set(old["annotated"]) if old["source"] == record["source"] else set()
            if not overlap:
                keep.append(old)
                continue
            replaced += len(overlap)
            gone.append(old["id"])
            if rest := sorted(set(old["annotated"]) - overlap):
                written.append(self._rewrite(old, rest))
        manifest = {**self._manifest, "pairs": keep + written}
        store.write_manifest(self.folder, manifest)
        self._manifest = manifest
        backups = tuple(store.back_up(self.folder, pair_id) for pair_id in gone)
        return AddReport(self.folder, (record["id"],), replaced=replaced, backups=backups)

    def _rewrite(self, old: dict[str, Any], rest: list[int]) -> dict[str, Any]:
        """Store again the slices ``rest`` of pair ``old`` (the others are being replaced)."""
        image, labels = store.read_pair(self.folder, old)
        original = np.asarray(old["slices"])
        keep = np.flatnonzero(store.near(original, rest, self.context))
        labels = np.where(np.isin(original[keep], rest)[:, None, None], labels[keep], 0)
        extra = {k: v for k, v in old.items() if k not in ("id", "source", "slices", "annotated", "shape",
                                                            "pixel_size_um", "class_pixels", "added")}
        record = self._record(old["source"], original[keep], np.asarray(rest), labels,
                              old["pixel_size_um"] and tuple(old["pixel_size_um"]),
                              {**extra, "rewritten_from": old["id"]})
        self._manifest["next_id"] += 1
        store.write_pair(self.folder, record, image[keep], labels, rgb=self.modality == "rgb",
                         class_table=self.class_table)
        return record

    # -- removing -------------------------------------------------------------------------

    def remove(self, pair_ids: Sequence[str]) -> RemoveReport:
        """Take the pairs ``pair_ids`` (as listed by :meth:`info`, e.g. ``"p0003"``) out of
        the set: the manifest is rewritten without them, then their folders move to
        ``backups/`` (nothing is deleted). Removing every pair leaves an empty set.

        Raises
        ------
        SkinsegInputError
            When an id is not a pair of the set; nothing is changed then.
        """
        self._manifest = store.read_manifest(self.folder)  # another window or process may have changed it
        wanted = list(dict.fromkeys(str(i) for i in pair_ids))
        records = self._manifest["pairs"]
        known = [str(r["id"]) for r in records]
        if unknown := [i for i in wanted if i not in known]:
            raise store.unknown_pairs(self.folder, unknown, known)
        if not wanted:
            return RemoveReport(self.folder)
        gone = [r for r in records if r["id"] in wanted]
        manifest = {**self._manifest, "pairs": [r for r in records if r["id"] not in wanted]}
        store.write_manifest(self.folder, manifest)
        self._manifest = manifest
        backups = tuple(store.back_up(self.folder, r["id"]) for r in gone)
        return RemoveReport(self.folder, tuple(r["id"] for r in gone), sum(len(r["annotated"]) for r in gone), backups)

    # -- reading --------------------------------------------------------------------------

    def _read_pair(self, record: dict[str, Any]) -> tuple[ImageData, np.ndarray]:
        """A stored pair, the image with its recorded pixel size (a surface window needs it)."""
        image, labels = store.read_pair(self.folder, record)
        return ImageData(image, store.pixel_sizes(record, labels.ndim), pixel_size_known=bool(record["pixel_size_um"]),
                         rgb=self.modality == "rgb"), labels

    def info(self) -> TrainingSetInfo:
        """Pairs, annotated slices, pixels per class and pixel size, from the manifest alone."""
        pairs = self._manifest["pairs"]
        table = self.class_table
        counts = {c.name: sum(int(r["class_pixels"].get(str(c.value), 0)) for r in pairs) for c in table.classes}
        known = [r["pixel_size_um"] for r in pairs if r["pixel_size_um"]]
        size = tuple(float(s) for s in np.median(known, axis=0)) if known else None
        return TrainingSetInfo(
            self.folder, self.modality, table, len(pairs), sum(len(r["annotated"]) for r in pairs),
            len({r["source"] for r in pairs}), counts, size, self.context,
            tuple((str(r["id"]), str(r["source"]), tuple(r["annotated"])) for r in pairs),
        )

    def slices(
        self,
        *,
        model: ModelInfo | None = None,
        normalisation: dict[str, Any] | None = None,
        neighbours: int = 0,
        surface_window: dict[str, int] | None = None,
    ) -> InMemorySlices:
        """The set's annotated slices, ready for :func:`skinseg.train.train`.

        Keys are ``(source, original slice index)``, so a block split keeps neighbouring
        B-scans together. ``model`` takes its normalisation, neighbour channels and surface
        window (to fine-tune it); otherwise ``normalisation``, ``neighbours`` and
        ``surface_window`` as in :func:`skinseg.train.slices_from_pairs`.

        Raises
        ------
        SkinsegInputError
            When the set holds no annotated slice, a pair is damaged, or more neighbour
            channels are asked for than the set keeps as context.
        """
        window = surface_window
        if model is not None:
            normalisation, neighbours = model.normalisation, int(model.input.get("neighbours", 0))
            window = model.input.get("surface_window")
        if not self._manifest["pairs"]:
            raise SkinsegInputError(
                f"no annotated slices in {self.folder}: add images with labels first "
                "(`skinseg trainset add` or the Train widget)."
            )
        if neighbours > self.context:
            raise SkinsegInputError(
                f"{self.folder}: {neighbours} neighbour channel(s) per side asked for, but the set keeps "
                f"{self.context} context slice(s); build a set that keeps them (`skinseg trainset add "
                f"--context {neighbours}`, or TrainingSet.create(..., context={neighbours}))."
            )
        records = {str(self.folder / store.PAIRS / r["id"]): r for r in self._manifest["pairs"]}
        pairs = [(*self._read_pair(r), name) for name, r in records.items()]
        result = slices_from_pairs(pairs, self.class_table, normalisation=normalisation,
                                   neighbours=neighbours, modality=self.modality, surface_window=window)
        result.keys = [SliceKey(records[k.source]["source"], int(records[k.source]["slices"][k.index]))
                       for k in result.keys]
        return result

