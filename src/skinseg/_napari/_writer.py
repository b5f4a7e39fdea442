"""napari writer contribution: Labels → OME-TIFF with pixel size and class table."""

from __future__ import annotations

from typing import Any

import numpy as np

from skinseg import io
from skinseg.classes import OCT_CLASSES, ClassTable, LabelClass


def _class_table(meta: dict[str, Any], data: np.ndarray) -> ClassTable:
    """The layer's class table; a generic one when the layer was painted from scratch."""
    stored = meta.get("metadata", {}).get("class_table")
    if stored is not None:
        return stored if isinstance(stored, ClassTable) else ClassTable.from_dict(stored)
    values = np.unique(np.asarray(data))
    if set(values.tolist()) <= set(OCT_CLASSES.values):
        return OCT_CLASSES
    return ClassTable("unnamed", tuple(LabelClass(int(v), f"class {int(v)}", "#808080") for v in values))


def write_labels_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer as OME-TIFF; returns the written path."""
    scale = tuple(float(s) for s in meta.get("scale", (1.0,) * np.ndim(data)))
    array = np.asarray(data)
    io.write_labels(path, array, pixel_size_um=scale, class_table=_class_table(meta, array))
    return [path]
