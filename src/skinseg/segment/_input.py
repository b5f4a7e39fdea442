"""Input checks shared by every OCT segmentation method."""

from __future__ import annotations

from typing import Any

import numpy as np

from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData


def oct_volume(image: Any, pixel_size_um: Any, *, min_depth: int = 1) -> tuple[Any, bool, Any, str]:
    """Validate a grey B-scan or tomogram for segmentation.

    Returns the 3-D volume (a B-scan gets a leading axis; lazy arrays stay lazy), whether
    it was 2-D, the pixel size given (else the :class:`ImageData`'s when known, else None)
    and a name for messages.
    """
    source = "image"
    if isinstance(image, ImageData):
        source = image.source or source
        if image.rgb:
            raise SkinsegInputError(
                f"{source}: an RGB image cannot be segmented into OCT skin layers; open the "
                "grey-scale OCT B-scan or tomogram."
            )
        if pixel_size_um is None and image.pixel_size_known:
            pixel_size_um = image.pixel_size_um
        image = image.data
    if not hasattr(image, "shape"):
        image = np.asarray(image)
    shape = tuple(image.shape)
    if len(shape) == 3 and shape[-1] in (3, 4):
        raise SkinsegInputError(
            f"{source}: shape {shape} looks like an RGB(A) image; OCT skin-layer segmentation "
            "needs a grey-scale B-scan (depth, width) or tomogram (n_bscans, depth, width)."
        )
    if len(shape) not in (2, 3) or 0 in shape:
        raise SkinsegInputError(
            f"{source}: shape {shape} is not a B-scan (depth, width) or a tomogram "
            "(n_bscans, depth, width); select a 2-D or 3-D grey-scale OCT image."
        )
    if shape[-2] < min_depth:
        raise SkinsegInputError(
            f"{source}: shape {shape} is too small; a B-scan needs at least {min_depth} rows of depth."
        )
    if np.dtype(image.dtype).kind not in "uif":
        raise SkinsegInputError(f"{source}: data type {image.dtype} is not a grey-scale intensity image.")
    return (image[None] if len(shape) == 2 else image), len(shape) == 2, pixel_size_um, source


def checked_pixel_sizes(value: Any, ndim: int, source: str) -> tuple[float, ...]:
    """``value`` (one number or one per spatial axis) as ``ndim`` positive floats."""
    sizes = np.asarray(value, dtype=float)
    if sizes.ndim == 0:
        sizes = np.full(ndim, float(sizes))
    if sizes.shape != (ndim,) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise SkinsegInputError(
            f"{source}: pixel_size_um must be one positive number or {ndim} (one per spatial "
            f"axis), got {value!r}"
        )
    return tuple(float(s) for s in sizes)
