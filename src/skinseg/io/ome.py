"""OME-TIFF writing shared by the labels and image writers (atomic, µm pixel sizes)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from skinseg.io.atomic import atomic_write


def write_ome_tiff(
    path: str | Path,
    array: np.ndarray,
    pixel_size_um: tuple[float, ...],
    *,
    rgb: bool = False,
    annotation: dict[str, str] | None = None,
) -> Path:
    """Write ``array`` as a zlib-compressed OME-TIFF with ``PhysicalSize`` in µm, atomically.

    ``annotation`` (key → string, with a ``Namespace`` key) becomes an OME MapAnnotation.
    """
    spatial = array.ndim - (1 if rgb else 0)
    axes = "ZYX"[-spatial:] + ("S" if rgb else "")
    ome: dict[str, Any] = {"axes": axes}
    if annotation:
        ome["MapAnnotation"] = annotation
    for axis, size in zip("ZYX"[-spatial:], pixel_size_um):
        ome[f"PhysicalSize{axis}"], ome[f"PhysicalSize{axis}Unit"] = size, "µm"
    buffer = io.BytesIO()  # tifffile needs a named file or a stream; compressed data is small
    tifffile.imwrite(
        buffer, array, ome=True, metadata=ome,
        photometric="rgb" if rgb else "minisblack", compression="zlib",
    )
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getbuffer())
    return Path(path)


def write_image(path: str | Path, image: Any, *, pixel_size_um: tuple[float, ...], rgb: bool = False) -> Path:
    """Save an OCT volume/B-scan or an RGB image as OME-TIFF with its µm pixel size."""
    arr = np.asarray(image)
    return write_ome_tiff(path, arr, tuple(float(p) for p in pixel_size_um), rgb=rgb)
