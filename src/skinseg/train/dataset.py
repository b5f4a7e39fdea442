"""Training slices from (image, labels) pairs, and a validation split by blocks of slices.

A training set is a sequence of 2-D slices: a B-scan of a tomogram, a single B-scan, or
an RGB image, each with its labels. Only annotated slices count (DESIGN.md): a slice
holding any non-zero label is used whole, 0 inside it meaning background; a slice with
no label at all is left out. Slices are normalised once, with the same function and
record as inference (:mod:`skinseg.segment.normalise`), and label values become the
model's output channels (channel ``i`` = ``class_table.classes[i]``).

The engine (:mod:`skinseg.train.engine`) only needs what :class:`SliceSet` lists, so a
training-set folder read lazily from disk can feed it the same way as
:class:`InMemorySlices`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.models.files import ModelInfo
from skinseg.segment.normalise import (
    DEFAULT_NORMALISATION,
    intensity_range,
    neighbour_indices,
    normalise,
    shift_columns,
    surface_shifts,
)

RGB_NORMALISATION: dict[str, Any] = {"kind": "fixed", "low": 0, "high": 255}
"""Normalisation record for 8-bit colour images (biopsies, photographs)."""


@dataclass(frozen=True)
class SliceKey:
    """Where a slice comes from: its pair's name and its index along the first axis."""

    source: str
    index: int


class SliceSet(Protocol):
    """What the training engine reads: normalised slices and their class indices."""

    class_table: ClassTable
    normalisation: dict[str, Any]
    neighbours: int
    modality: str
    keys: list[SliceKey]

    @property
    def in_channels(self) -> int: ...

    def __len__(self) -> int: ...

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``i``: image ``(channels, height, width)`` float32, labels ``(height, width)``."""
        ...

    def class_counts(self) -> np.ndarray:
        """Pixels per class index over all slices."""
        ...


@dataclass
class InMemorySlices:
    """Annotated slices held in memory (:func:`slices_from_pairs` builds them).

    Attributes
    ----------
    images
        One ``(channels, height, width)`` float32 normalised array per slice.
    labels
        One ``(height, width)`` uint8 array of class *indices* per slice.
    keys
        Where each slice comes from.
    class_table, normalisation, neighbours, modality
        The class table, normalisation record and neighbour channels (per side) the
        slices were made with; ``modality`` is ``"oct"`` or ``"rgb"`` (augmentation).
    surface_window
        ``{"above": a, "rows": r}`` when the slices are flattened to the skin surface
        (:func:`slices_from_pairs`), else None; models record it as their input.
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]
    keys: list[SliceKey]
    class_table: ClassTable
    normalisation: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    neighbours: int = 0
    modality: str = "oct"
    surface_window: dict[str, int] | None = None

    @property
    def in_channels(self) -> int:
        return int(self.images[0].shape[0]) if self.images else 0

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[i], self.labels[i]

    def class_counts(self) -> np.ndarray:
        n = len(self.class_table.classes)
        return sum((np.bincount(lab.ravel(), minlength=n) for lab in self.labels), np.zeros(n, np.int64))

    def subset(self, indices: Sequence[int]) -> InMemorySlices:
        """The slices at ``indices``, sharing arrays with this set."""
        pick = [int(i) for i in indices]
        return InMemorySlices(
            [self.images[i] for i in pick], [self.labels[i] for i in pick],
            [self.keys[i] for i in pick], self.class_table, dict(self.normalisation),
            self.neighbours, self.modality, self.surface_window,
        )

    def split(
        self, val_fraction: float = 0.2, block_size: int | None = None
    ) -> tuple[InMemorySlices, InMemorySlices]:
        """(training, validation) subsets by :func:`block_split`."""
        train, val = block_split(self.keys, val_fraction, block_size)
        return self.subset(train), self.subset(val)


def annotated_slices(labels: Any) -> np.ndarray:
    """Indices of the annotated slices of ``labels``: those holding any non-zero label.

    ``(n, height, width)`` gives indices along the first axis; a single ``(height,
    width)`` slice gives ``[0]`` when annotated and ``[]`` otherwise.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return np.flatnonzero([labels.any()])
    return np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))


def _class_indices(labels: np.ndarray, table: ClassTable, name: str) -> np.ndarray:
    """Label values → output-channel indices of ``table``; unknown values are an error."""
    values = np.asarray(table.values)
    order = np.argsort(values)
    found = np.unique(labels)
    unknown = np.setdiff1d(found, values)
    if unknown.size:
        raise SkinsegInputError(
            f"{name}: labels hold values {unknown.tolist()} that the class table "
            f"{table.name!r} lacks (it has {table.values}); relabel them or pick a model with those classes."
        )
    pos = order[np.searchsorted(values, labels, sorter=order)]
    return pos.astype(np.uint8)


def _unwrap(x: Any) -> tuple[np.ndarray | Any, bool, str]:
    if isinstance(x, ImageData):
        return x.data, x.rgb, x.source
    return x, False, ""


def _pair_slices(
    image: Any, labels: Any, name: str, table: ClassTable, spec: dict[str, Any] | None, neighbours: int,
    window: dict[str, int] | None, pixel_size_um: tuple[float, ...] | None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[SliceKey], bool]:
    """Normalised annotated slices of one pair; the last item says whether it is colour."""
    sizes = image.pixel_size_um if isinstance(image, ImageData) else pixel_size_um
    image, rgb, source = _unwrap(image)
    labels = np.asarray(_unwrap(labels)[0])
    name = name or source or "pair"
    shape = tuple(image.shape)
    colour = rgb or (len(shape) == labels.ndim + 1 and shape[:-1] == labels.shape and shape[-1] == 3)
    if (shape[:-1] if colour else shape) != labels.shape or labels.ndim not in (2, 3):
        raise SkinsegInputError(
            f"{name}: image {shape} and labels {labels.shape} do not match; labels must cover the "
            "image pixel for pixel, as (height, width) or (n_slices, height, width)."
        )
    spec = _default_spec(colour) if spec is None else spec
    picks = annotated_slices(labels)
    stack = labels.ndim == 3
    if colour:  # channels first; the whole pair sets the intensity range
        image = np.moveaxis(np.asarray(image), -1, -3)
        value_range = intensity_range(image.reshape(-1, *image.shape[-2:]), spec)
        raw = [image[i] if stack else image for i in picks]
    else:
        value_range = intensity_range(image, spec)
        n = shape[0] if stack else 1
        rows = neighbour_indices(picks, n, neighbours)
        raw = [np.stack([image[j] if stack else image for j in row]) for row in rows]
    images = [normalise(r, spec, value_range) for r in raw]
    label_slices = [labels[i] if stack else labels for i in picks]
    if window is not None and not colour:
        images, label_slices = _flattened(image, picks, rows, images, label_slices, window, sizes, name)
    for i, x in zip(picks, images):
        if not np.isfinite(x).all():
            raise SkinsegInputError(f"{name}: slice {i} holds NaN or infinite values; fix or drop it.")
    slices = [_class_indices(lab, table, name) for lab in label_slices]
    return images, slices, [SliceKey(name, int(i)) for i in picks], colour


def _flattened(
    image: Any, picks: np.ndarray, rows: np.ndarray, images: list[np.ndarray], labels: list[np.ndarray],
    window: dict[str, int], sizes: tuple[float, ...] | None, name: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Slices and labels flattened to the classical skin surface, as inference does."""
    if sizes is None:
        raise SkinsegInputError(f"{name}: flattening to the skin surface needs the pixel size (µm).")
    stack = np.asarray(image)
    stack = stack if stack.ndim == 3 else stack[None]
    shifts = surface_shifts(stack, tuple(sizes), window["above"])  # the whole stack, as inference
    flat_images = [shift_columns(x, shifts[row], window["rows"]) for x, row in zip(images, rows)]
    flat_labels = [shift_columns(lab, shifts[i], window["rows"]) for lab, i in zip(labels, picks)]
    return flat_images, flat_labels


def _default_spec(colour: bool) -> dict[str, Any]:
    return dict(RGB_NORMALISATION if colour else DEFAULT_NORMALISATION)


def slices_from_pairs(
    pairs: Sequence[tuple[Any, ...]],
    class_table: ClassTable,
    *,
    normalisation: dict[str, Any] | None = None,
    neighbours: int = 0,
    modality: str | None = None,
    surface_window: dict[str, int] | None = None,
    pixel_size_um: tuple[float, ...] | None = None,
) -> InMemorySlices:
    """Annotated slices from (image, labels) or (image, labels, name) pairs.

    Parameters
    ----------
    pairs
        Images (numpy, lazy array or :class:`ImageData`): a tomogram ``(n, depth, width)``
        with labels of the same shape, a B-scan ``(depth, width)``, or a colour image
        ``(height, width, 3)`` with ``(height, width)`` labels (or stacks of those).
        Label values must be in ``class_table``.
    class_table
        The classes the model predicts.
    normalisation
        Intensity record (:mod:`skinseg.segment.normalise`); default percentile 1–99.5
        for grey images, 0–255 fixed for colour.
    neighbours
        Grey stacks only: add the ``k`` neighbouring slices on each side as channels.
    modality
        ``"oct"`` or ``"rgb"`` (chooses the augmentation); default by the images.
    surface_window
        Grey images only: ``{"above": a, "rows": r}`` flattens every slice (and its
        neighbours) to the classical skin surface (:func:`~skinseg.segment.normalise.surface_shifts`)
        and keeps ``r`` rows from ``a`` above it; inference repeats this for models that
        record it. Needs the pixel size.
    pixel_size_um
        µm per pixel (depth, width) of images that are not :class:`ImageData`.

    Raises
    ------
    SkinsegInputError
        On mismatched shapes, label values the table lacks, NaN, grey and colour pairs
        mixed, or no annotated slice at all.
    """
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    keys: list[SliceKey] = []
    colours = set()
    for n, pair in enumerate(pairs):
        name = str(pair[2]) if len(pair) > 2 else f"pair {n + 1}"
        im, lab, key, colour = _pair_slices(
            pair[0], pair[1], name, class_table, normalisation, neighbours, surface_window, pixel_size_um
        )
        images += im
        labels += lab
        keys += key
        colours.add(colour)
    if len(colours) > 1:
        raise SkinsegInputError("training pairs mix grey and colour images; train on one kind at a time.")
    if not images:
        raise SkinsegInputError(
            "no annotated slices in the training pairs: paint labels on at least one slice "
            "(a slice counts when it holds any non-zero label)."
        )
    colour = colours.pop()
    spec = _default_spec(colour) if normalisation is None else dict(normalisation)
    modality = modality or ("rgb" if colour else "oct")
    window = None if colour or surface_window is None else dict(surface_window)
    return InMemorySlices(images, labels, keys, class_table, spec, neighbours, modality, window)


def block_split(
    keys: Sequence[SliceKey], val_fraction: float = 0.2, block_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, validation taken as whole blocks of slices.

    Slices are ordered by source, then index; each source is cut into blocks of
    ``block_size`` consecutive slices, and about ``val_fraction`` of the slices go to
    validation as blocks spread evenly over that order. Neighbouring B-scans are nearly
    alike, so a random pick would put a validation slice's twin in training; blocks
    keep them together. Deterministic: no seed.

    Parameters
    ----------
    keys
        Where each slice comes from (:class:`SliceKey`).
    val_fraction
        Fraction of slices for validation, in (0, 1).
    block_size
        Slices per block; default half the validation slices (two blocks).

    Returns
    -------
    (train indices, validation indices) into ``keys``, each sorted.
    """
    if not 0 < val_fraction < 1:
        raise SkinsegInputError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n = len(keys)
    if n < 2:
        raise SkinsegInputError(
            f"{n} annotated slice(s): need at least 2 to hold some out for validation; annotate more."
        )
    n_val = max(1, round(n * val_fraction))
    block_size = block_size or max(1, math.ceil(n_val / 2))
    sources = list(dict.fromkeys(k.source for k in keys))
    order = sorted(range(n), key=lambda i: (sources.index(keys[i].source), keys[i].index))
    blocks: list[list[int]] = []
    for i in order:
        same = blocks and keys[blocks[-1][0]].source == keys[i].source
        if same and len(blocks[-1]) < block_size:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    k = min(max(1, round(n_val / block_size)), len(blocks) - 1)
    if k < 1:
        raise SkinsegInputError(
            "all annotated slices form one block; annotate slices further apart or lower block_size."
        )
    chosen = {int((j + 0.5) * len(blocks) / k) for j in range(k)}
    val = sorted(i for b in chosen for i in blocks[b])
    train = sorted(set(range(n)) - set(val))
    return np.array(train, dtype=int), np.array(val, dtype=int)


def slices_for_model(
    pairs: Sequence[tuple[Any, ...]], info: ModelInfo, *, modality: str | None = None,
    pixel_size_um: tuple[float, ...] | None = None,
) -> InMemorySlices:
    """:func:`slices_from_pairs` with a model's class table, normalisation, neighbour
    channels and surface window, ready to fine-tune it."""
    return slices_from_pairs(
        pairs, info.class_table, normalisation=info.normalisation,
        neighbours=int(info.input.get("neighbours", 0)), modality=modality,
        surface_window=info.input.get("surface_window"), pixel_size_um=pixel_size_um,
    )
