"""Turn library results into napari layer-data tuples with µm scale and class tables."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from skinseg.classes import ClassTable
from skinseg.io.image_data import ImageData

LayerDataTuple = tuple[Any, dict[str, Any], str]


AXIS_LABELS = {2: ("y", "x"), 3: ("B-scan", "depth", "width")}


def _spatial_kwargs(pixel_size_um: tuple[float, ...]) -> dict[str, Any]:
    """µm scale and units; named axes for B-scans/images (2D) and tomograms (3D)."""
    kwargs: dict[str, Any] = {"scale": tuple(pixel_size_um), "units": ("µm",) * len(pixel_size_um)}
    if len(pixel_size_um) in AXIS_LABELS:
        kwargs["axis_labels"] = AXIS_LABELS[len(pixel_size_um)]
    return kwargs


def image_layer(img: ImageData, name: str, **kwargs: Any) -> LayerDataTuple:
    """An Image layer tuple: data at its µm scale, provenance in ``metadata``."""
    meta = {
        "source": img.source,
        "pixel_size_um": img.pixel_size_um,
        "pixel_size_known": img.pixel_size_known,
    }
    layer_kwargs = {"name": name, "rgb": img.rgb, "metadata": meta, **_spatial_kwargs(img.pixel_size_um)}
    return img.data, {**layer_kwargs, **kwargs}, "image"


def labels_colormap(table: ClassTable) -> DirectLabelColormap:
    """Fixed colours per class value; unknown values are transparent-grey."""
    color_dict: dict[int | None, Any] = dict(table.colors_rgba())
    color_dict[None] = (0.5, 0.5, 0.5, 0.5)
    return DirectLabelColormap(color_dict=color_dict)


def labels_features(table: ClassTable) -> dict[str, list]:
    """Features table naming each class (napari shows the name under the cursor)."""
    return {"index": table.values, "class": table.names}


def labels_layer(
    data: Any,
    pixel_size_um: tuple[float, ...],
    table: ClassTable,
    name: str,
    metadata_extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> LayerDataTuple:
    """A Labels layer tuple with the class table's names and colours at µm scale."""
    metadata = {"class_table": table.to_dict(), "pixel_size_um": tuple(pixel_size_um), **(metadata_extra or {})}
    layer_kwargs = {
        "name": name,
        "colormap": labels_colormap(table),
        "features": labels_features(table),
        "metadata": metadata,
        **_spatial_kwargs(pixel_size_um),
    }
    return data, {**layer_kwargs, **kwargs}, "labels"


def points_layer(points_px: np.ndarray, pixel_size_um: tuple[float, ...], name: str, **kwargs: Any) -> LayerDataTuple:
    """A Points layer tuple: coordinates in pixels, displayed at µm scale."""
    layer_kwargs = {"name": name, **_spatial_kwargs(pixel_size_um)}
    return np.asarray(points_px, dtype=float).reshape(-1, len(pixel_size_um)), {**layer_kwargs, **kwargs}, "points"
