"""napari reader contribution over :mod:`skinseg.io`.

Declines (returns None) what it does not understand; for a file it claims but cannot
read, the library's :class:`~skinseg.errors.SkinsegInputError` reaches the user as is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from skinseg import io
from skinseg.classes import ClassTable
from skinseg._napari._layers import LayerDataTuple, image_layer, labels_layer

Reader = Callable[[str], list[LayerDataTuple]]


def _layer_name(path: str) -> str:
    name = Path(path).name
    for suffix in (".ome.tif", ".ome.tiff", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem if Path(path).suffix else name


def read_oct_layers(path: str) -> list[LayerDataTuple]:
    """Open an OCT tomogram, B-scan or folder of B-scans as one Image layer."""
    return [image_layer(io.read_oct(path), _layer_name(path), colormap="gray")]


def read_rgb_layers(path: str) -> list[LayerDataTuple]:
    """Open an RGB biopsy or photo image as one Image layer."""
    return [image_layer(io.read_rgb(path), _layer_name(path))]


def read_labels_layers(path: str) -> list[LayerDataTuple]:
    """Open a labels OME-TIFF written by skinseg, with its class table."""
    labels = io.read_labels(path)
    table: ClassTable = labels.metadata["class_table"]
    return [labels_layer(labels.data, labels.pixel_size_um, table, _layer_name(path))]


def get_reader(path: str | list[str]) -> Reader | None:
    """Pick the reader for ``path``, or None when skinseg does not handle it."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = str(path)
    if io.is_labels_file(path):
        return read_labels_layers
    if io.claims_rgb(path):
        return read_rgb_layers
    if io.claims_oct(path):
        return read_oct_layers
    return None
