"""GUI-free logic of the "Train segmentation model" widget: pairs, sets, the training run.

Everything here works on napari layer models, arrays and files only (no Qt), so tests
and scripts can drive it without a window; :mod:`skinseg._napari._train_widget` adds the
controls, the thread worker and the live plot (:mod:`skinseg._napari._train_plot`).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import napari
import numpy as np
import torch

# torch loads ``torch._dynamo`` with the first optimizer. Loaded in the training worker, it
# held the interpreter lock long enough to stall the window for up to 1.3 s on a busy
# 2-core machine; imported here, it is paid once, when the widget opens.
import torch._dynamo  # noqa: F401

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES, ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import pixel_sizes_differ
from skinseg.models.files import read_model_info
from skinseg.models.registry import resolve_model, user_model_dir
from skinseg.progress import ProgressGenerator
from skinseg.train import (
    ALIGNED_INPUT, ALIGNED_UNET, AddReport, EpochReport, SliceSet, TrainConfig, TrainingSet, annotated_slices,
    block_split, is_training_set, new_model_info, slices_for_model, slices_from_pairs, train,
)  # fmt: skip
from skinseg.train.trainset import PIXEL_SIZE_TOLERANCE
from skinseg._napari._choices import MODEL_FILE

FROM_LABELS = "from the labels layer"
TASK_TABLES = {"OCT layers": OCT_CLASSES, "biopsy tissue": TISSUE_CLASSES, "nerves": NERVE_CLASSES}
"""Task choice → class table; a model's task is its class table's name."""

BUILTIN, SCRATCH, ALIGNED = "built-in model", "from scratch", "from scratch, surface-aligned (OCT)"
START_CHOICES = [BUILTIN, SCRATCH, ALIGNED, MODEL_FILE]
"""Where training starts; ``ALIGNED`` is the ``aligned`` recipe (:mod:`skinseg.train.recipes`):
B-scans flattened to the skin surface, neighbour B-scans as channels."""
OCT_CONTEXT = ALIGNED_INPUT["neighbours"]
"""B-scans kept each side of an annotated one in OCT training sets the widget creates, so
the set can also train the aligned recipe."""


def class_table_of(labels: napari.layers.Labels, choice: str = FROM_LABELS) -> ClassTable:
    """The class table chosen, or (``FROM_LABELS``) the one our labels layers carry."""
    if choice != FROM_LABELS:
        return TASK_TABLES[choice]
    table = labels.metadata.get("class_table")
    if table is None:
        raise SkinsegInputError(
            f"labels layer '{labels.name}' carries no class table; choose the task (OCT layers, "
            "biopsy tissue or nerves) instead of 'from the labels layer'."
        )
    return ClassTable.from_dict(table)


@dataclass(frozen=True)
class Pair:
    """An image and a snapshot of its labels, as added to the in-memory list.

    ``labels`` is a copy taken when added, zero outside the chosen slices, so painting
    on after adding changes nothing here (add again to include new corrections).
    """

    name: str
    image: Any
    labels: np.ndarray
    pixel_size_um: tuple[float, ...]
    rgb: bool

    def annotated(self) -> np.ndarray:
        """The annotated slices' labels, ``(n, height, width)``."""
        return self.labels.reshape(-1, *self.labels.shape[-2:])[annotated_slices(self.labels)]


def checked_layers(image: napari.layers.Image | None, labels: napari.layers.Labels | None) -> None:
    """Both layers chosen and the labels covering the image pixel for pixel."""
    if image is None or labels is None:
        raise SkinsegInputError("Choose an image layer and the labels layer painted on it.")
    shape = image.data.shape[:-1] if image.rgb else image.data.shape
    if tuple(shape) != tuple(labels.data.shape):
        raise SkinsegInputError(
            f"image layer '{image.name}' {tuple(image.data.shape)} and labels layer '{labels.name}' "
            f"{tuple(labels.data.shape)} differ in shape; choose the labels painted on that image."
        )


def current_slice(labels: napari.layers.Labels, world_point: Sequence[float]) -> int:
    """Index of the slice of a 3-D labels layer shown at the viewer's ``dims.point``."""
    if labels.ndim != 3:
        raise SkinsegInputError(f"labels layer '{labels.name}' is {labels.ndim}-D; 'current slice' needs a 3-D stack.")
    index = int(np.round(labels.world_to_data(world_point[-labels.ndim:])[0]))
    return int(np.clip(index, 0, labels.data.shape[0] - 1))


def make_pair(
    image: napari.layers.Image, labels: napari.layers.Labels, table: ClassTable, slices: Sequence[int] | None = None
) -> Pair:
    """Snapshot of ``labels`` (only ``slices`` of a stack when given) checked against ``table``."""
    checked_layers(image, labels)
    data = np.array(labels.data)
    if slices is not None:
        keep = np.zeros(data.shape[0], bool)
        keep[list(slices)] = True
        data[~keep] = 0
    unknown = np.setdiff1d(np.unique(data), table.values)
    if unknown.size:
        raise SkinsegInputError(
            f"labels layer '{labels.name}' holds values {unknown.tolist()} that the class table "
            f"{table.name!r} lacks ({table.values}); relabel them or choose another task."
        )
    if not data.any():
        where = f"slice {slices[0]}" if slices is not None and len(slices) == 1 else "it"
        raise SkinsegInputError(f"labels layer '{labels.name}': nothing is painted in {where}; paint labels first.")
    scale = tuple(float(s) for s in image.scale[-2:])
    return Pair(f"{image.name} + {labels.name}", image.data, data, scale, bool(image.rgb))


def check_pixel_size(listed: Sequence[Pair], pair: Pair) -> None:
    """``pair``'s pixels match the first listed pair's: in-memory pairs train at one pixel size."""
    if listed and pixel_sizes_differ(pair.pixel_size_um, listed[0].pixel_size_um, PIXEL_SIZE_TOLERANCE):
        raise SkinsegInputError(
            f"'{pair.name}': pixels of {pair.pixel_size_um} µm (rows, columns) are far from the "
            f"{listed[0].pixel_size_um} µm of '{listed[0].name}', added first; set the image layer's "
            "scale (µm per pixel), resample the image, or train it separately."
        )


def add_to_set(folder: Path, pair: Pair, table: ClassTable, slices: Sequence[int] | None) -> AddReport:
    """Add the pair's annotated slices (or ``slices`` of a stack) to the training set in
    ``folder``, created for ``table`` if there is none yet. Re-adding a slice replaces it
    (the old one goes to the set's backups)."""
    modality, context = ("rgb", 0) if pair.rgb else ("oct", OCT_CONTEXT)
    ts = TrainingSet.open_or_create(folder, table, modality=modality, context=context)
    return ts.add(pair.image, pair.labels, pixel_size_um=pair.pixel_size_um, source=pair.name, slices=slices)


def set_contents(folder: Path) -> tuple[ClassTable | None, str]:
    """(class table, readable contents) of the training set in ``folder`` (None: no set yet)."""
    if not is_training_set(folder):
        return None, f"training set {folder.name}: new, created on the first add"
    info = TrainingSet.open(folder).info()
    return info.class_table, str(info)


def pairs_summary(pairs: Sequence[Pair], table: ClassTable | None) -> str:
    """Slices and pixels per class of the in-memory pairs, as a few readable lines."""
    if not pairs:
        return "no pairs yet: choose layers and add slices."
    stacks = [p.annotated() for p in pairs]
    counts = sum(np.bincount(s.ravel(), minlength=max(table.values) + 1) for s in stacks)
    per_class = ", ".join(f"{c.name} {int(counts[c.value]):,}" for c in table.classes)
    return f"{len(pairs)} pair(s), {sum(len(s) for s in stacks)} slice(s); pixels: {per_class}"


@dataclass
class Curves:
    """Per-epoch history for the live plot."""

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    dice: dict[str, list[float]] = field(default_factory=dict)

    def add(self, report: EpochReport) -> None:
        self.epochs.append(report.epoch)
        self.train_loss.append(report.train_loss)
        self.val_loss.append(report.val_loss)
        for name, value in report.val_dice.items():
            self.dice.setdefault(name, []).append(value)

    def copy(self) -> Curves:
        return Curves(list(self.epochs), list(self.train_loss), list(self.val_loss),
                      {name: list(values) for name, values in self.dice.items()})

    def take(self, reports: queue.Queue) -> int:
        """Add the reports waiting in ``reports``; returns how many."""
        n = 0
        while not reports.empty():
            self.add(reports.get())
            n += 1
        return n


def default_output(name: str, when: datetime | None = None) -> Path:
    """``<user model folder>/<name>-<YYYYmmdd-HHMMSS>.safetensors``, the name made file-safe."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "model"
    return user_model_dir() / f"{slug}-{(when or datetime.now()):%Y%m%d-%H%M%S}.safetensors"


def to_user_models(path: str | Path) -> Path:
    """The model file in the user model folder: ``path`` itself, or a copy put there
    (``name-2.safetensors`` ... if the name is taken: no model there is overwritten)."""
    path, folder = Path(path), user_model_dir()
    if path.resolve().parent == folder.resolve():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    target, k = folder / path.name, 2
    while target.exists():
        target, k = folder / f"{path.stem}-{k}{path.suffix}", k + 1
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)  # atomic: a model list never sees half a file
    return target


@dataclass(frozen=True)
class TrainRequest:
    """One training run: where the slices come from, the start model, settings, output.

    ``pairs`` are used when ``folder`` is None; ``start`` is ``"builtin"``, a model file,
    or None (from scratch, ``arguments`` for the network, default :data:`DEFAULT_UNET`).
    ``aligned`` (from scratch, OCT): the aligned recipe's input and network.
    """

    table: ClassTable
    output: Path
    config: TrainConfig
    pairs: tuple[Pair, ...] = ()
    folder: Path | None = None
    start: str | Path | None = "builtin"
    val_fraction: float = 0.2
    arguments: dict[str, Any] | None = None
    aligned: bool = False

    def __post_init__(self) -> None:
        if self.aligned and (self.start is not None or self.table.name != OCT_CLASSES.name):
            raise SkinsegInputError("surface-aligned training is for OCT layers, from scratch; "
                                    f"choose another start for {self.table.name!r}.")
        for pair in self.pairs[1:]:
            check_pixel_size(self.pairs, pair)

    def start_file(self) -> Path | None:
        if self.start is None:
            return None
        return resolve_model(self.start, task=self.table.name).path

    def pixel_size_um(self) -> tuple[float, ...] | None:
        """µm per pixel (depth, width) of the slices: the set's, or the pairs' (all alike)."""
        if self.folder is not None:
            return TrainingSet.open(self.folder).info().pixel_size_um
        return self.pairs[0].pixel_size_um if self.pairs else None

    def slices(self, start: Path | None) -> SliceSet:
        """Training slices, made with the start model's normalisation when fine-tuning."""
        recipe = ALIGNED_INPUT if self.aligned else {}
        if self.folder is not None:
            model = None if start is None else read_model_info(start)
            return TrainingSet.open(self.folder).slices(model=model, **recipe)
        pairs = [(p.image, p.labels, p.name) for p in self.pairs]
        if not pairs:
            raise SkinsegInputError("the training set is empty: add annotated slices or choose a training-set folder.")
        if start is None:  # the surface window is found at the first pair's pixel size
            return slices_from_pairs(pairs, self.table, pixel_size_um=self.pixel_size_um(), **recipe)
        return slices_for_model(pairs, read_model_info(start))


def _split(slices: SliceSet, val_fraction: float) -> tuple[SliceSet, SliceSet]:
    train_idx, val_idx = block_split(slices.keys, val_fraction)
    return slices.subset(train_idx), slices.subset(val_idx)


def training_threads() -> int:
    """Torch threads for training: all cores but one, which stays free for the window."""
    return max(1, (os.cpu_count() or 2) - 1)


def run_training(
    request: TrainRequest, stop: threading.Event, reports: queue.Queue
) -> ProgressGenerator[Path | None]:
    """Progress generator: build the slices, split by blocks, train; run it in a worker.

    Each epoch's :class:`EpochReport` goes into ``reports`` (for the live plot); the
    worker thins the steps (:mod:`skinseg._napari._worker`). Setting ``stop`` ends the run
    after the current batch: the engine keeps the best model, marked ``stopped:
    "interrupted"``. Returns the model file, or None when no epoch finished.
    """
    yield 0, 1, "reading the training slices"
    start = request.start_file()
    slices = request.slices(start)
    train_set, val_set = _split(slices, request.val_fraction)
    arguments = ALIGNED_UNET if request.aligned else request.arguments
    source = start if start is not None else new_model_info(
        slices, name=request.output.stem, task=request.table.name, arguments=arguments,
        pixel_size_um=request.pixel_size_um(),
    )
    data = {"slices": len(slices), "train": len(train_set), "validation": len(val_set),
            "sources": sorted({k.source for k in slices.keys})}
    request.output.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    steps = train(train_set, val_set, request.output, start=source, config=request.config, data=data)
    try:
        for step in steps:
            if step.report is not None:
                reports.put(step.report)
            yield step
            if stop.is_set():
                break
    finally:
        steps.close()  # on Stop: the engine writes the best model's history, in this thread
        torch.set_num_threads(threads)
    return request.output if request.output.is_file() else None
