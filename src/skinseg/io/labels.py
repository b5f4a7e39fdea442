"""Labels files: OME-TIFF with the pixel size and the class table inside.

The class table (and any extra metadata) is stored as JSON in an OME ``MapAnnotation``
with namespace :data:`NAMESPACE`; any other OME-TIFF reader sees an ordinary
``uint8``/``uint16`` image with ``PhysicalSize`` in µm.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import (
    TIFF_SUFFIXES,
    as_pixel_sizes,
    check_file,
    is_rgb_series,
    make_image_data,
    ome_xml,
    open_tiff,
    reading,
    squeeze_leading,
    tiff_pixel_sizes,
)
from skinseg.io.image_data import ImageData
from skinseg.io.ome import write_ome_tiff

NAMESPACE = "napari-skinseg/labels"
_RESERVED = ("class_table", "format")


def _label_array(labels: Any, source: str) -> np.ndarray:
    """Validated labels as ``uint8`` or ``uint16`` (other integer types shrink to fit)."""
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise SkinsegInputError(
            f"{source}: labels have shape {arr.shape}; need (depth, width) or "
            "(n_bscans, depth, width)."
        )
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "ui":
        raise SkinsegInputError(
            f"{source}: labels are {arr.dtype}; labels must be whole class values (uint8/uint16). "
            "Round or convert the labels before saving."
        )
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > np.iinfo(np.uint16).max:
        raise SkinsegInputError(
            f"{source}: label values run from {low} to {high}; they must be class values 0..65535."
        )
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    return arr.astype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)


def write_labels(
    path: str | Path,
    labels: Any,
    *,
    pixel_size_um: float | Sequence[float],
    class_table: ClassTable,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save labels as a zlib-compressed OME-TIFF, atomically.

    Parameters
    ----------
    path
        Output file, e.g. ``sample.labels.ome.tif``.
    labels
        ``(depth, width)`` or ``(n_bscans, depth, width)`` class values; ``uint8`` and
        ``uint16`` are kept, booleans and other integer types are stored as the smaller
        of ``uint8``/``uint16`` that holds them.
    pixel_size_um
        µm per pixel, one number or one per axis (written as OME ``PhysicalSize``).
    class_table
        What the values mean; every value in ``labels`` must be in it.
    metadata
        Extra JSON-serialisable fields, returned by :func:`read_labels` in
        ``ImageData.metadata`` (keys ``class_table`` and ``format`` are reserved).

    Returns
    -------
    The path written.
    """
    source = str(path)
    arr = _label_array(labels, source)
    sizes = as_pixel_sizes(pixel_size_um, arr.ndim, source)
    unknown = np.setdiff1d(np.unique(arr), class_table.values)
    if unknown.size:
        raise SkinsegInputError(
            f"{source}: labels hold values {unknown.tolist()} that class table "
            f"{class_table.name!r} does not have (it has {class_table.values}). "
            "Repaint those pixels or use a class table that has them."
        )
    extra = dict(metadata or {})
    if clash := [k for k in _RESERVED if k in extra]:
        raise SkinsegInputError(f"{source}: metadata keys {clash} are reserved; rename them.")
    try:
        extra_json = json.dumps(extra)
    except TypeError as e:
        raise SkinsegInputError(f"{source}: metadata must be JSON-serialisable ({e}).") from e
    annotation = {
        "Namespace": NAMESPACE,
        "class_table": json.dumps(class_table.to_dict()),
        "metadata": extra_json,
    }
    return write_ome_tiff(path, arr, sizes, annotation=annotation)


def _annotation(tif: tifffile.TiffFile) -> dict[str, str] | None:
    """Key → value of our MapAnnotation, or None when the file has none."""
    root = ome_xml(tif)
    if root is None:
        return None
    for ann in root.iterfind(".//{*}MapAnnotation"):
        if ann.get("Namespace") == NAMESPACE:
            return {m.get("K"): m.text or "" for m in ann.iterfind(".//{*}M")}
    return None


def read_labels(path: str | Path) -> ImageData:
    """Read a labels TIFF; ``metadata["class_table"]`` is its :class:`ClassTable`.

    Files from :func:`write_labels` round-trip exactly (array, dtype, pixel size, class
    table, extra metadata). Other integer TIFFs are read too, with
    ``metadata["class_table"] = None``.

    Raises
    ------
    SkinsegInputError
        Not a TIFF, damaged file or class table, not 2D/3D, or not whole non-negative values.
    """
    p = check_file(path)
    if not p.name.lower().endswith(TIFF_SUFFIXES):
        raise SkinsegInputError(
            f"{p}: labels are read from TIFF/OME-TIFF files; this is '{p.suffix}'."
        )
    tif = open_tiff(p)
    try:
        with reading(p, "a labels TIFF"):
            data = tif.series[0].asarray()
        stored = _annotation(tif) or {}
        with reading(p, "a labels file", "Its class table is damaged; save the labels again."):
            table = ClassTable.from_dict(json.loads(stored["class_table"])) if stored else None
            extra = json.loads(stored.get("metadata") or "{}")
        if is_rgb_series(tif):
            raise SkinsegInputError(f"{p}: is an RGB image, not labels; open it with read_rgb.")
        arr = _label_array(squeeze_leading(data), str(p))
        sizes = tiff_pixel_sizes(tif, arr.ndim)
    finally:
        tif.close()
    meta = {**extra, "class_table": table, "format": "ome-tiff" if tif.is_ome else "tiff"}
    return make_image_data(arr, sizes, None, source=str(p), metadata=meta)


def is_labels_file(path: str | Path) -> bool:
    """Cheap check: is this an OME-TIFF written by :func:`write_labels`?"""
    p = Path(path)
    if not p.is_file() or not p.name.lower().endswith(TIFF_SUFFIXES):
        return False
    try:
        with tifffile.TiffFile(p) as tif:
            return NAMESPACE in (tif.pages[0].description or "")
    except Exception:  # noqa: BLE001 - a peek answers "not mine", never raises
        return False
