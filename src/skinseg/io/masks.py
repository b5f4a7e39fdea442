"""Epidermis band masks (as in public skin-OCT data sets) to OCT labels."""

from __future__ import annotations

import numpy as np

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError

_EPIDERMIS = OCT_CLASSES.value_of("epidermis")
_DERMIS = OCT_CLASSES.value_of("dermis")


def band_mask_to_labels(
    mask: np.ndarray, threshold: float = 127, *, source: str = "mask"
) -> np.ndarray:
    """OCT labels from a mask of the epidermis band (surface down to the DEJ).

    Per A-scan column, the band runs from its first to its last pixel above
    ``threshold`` (gaps inside are filled): rows above it become air (0), rows inside
    it epidermis (4) and rows below it dermis (6). A column without band stays 0. The
    band's top edge is then the skin surface and its bottom edge the DEJ, as
    :func:`skinseg.measure.boundaries.surface_depth` and ``dej_depth`` read them back.

    Parameters
    ----------
    mask
        ``(depth, width)`` or ``(n_bscans, depth, width)``; boolean, or numbers compared
        with ``threshold`` (resized 8-bit masks have soft edges: 127 splits them).
    threshold
        Pixels strictly above it are in the band (ignored for boolean masks).
    source
        File or layer name for error messages.

    Returns
    -------
    ndarray uint8, same shape, in :data:`skinseg.classes.OCT_CLASSES`.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] in (3, 4):
        raise SkinsegInputError(
            f"{source}: mask of shape {mask.shape} looks like an RGB(A) image; "
            "save or load the mask as a single grey channel."
        )
    if mask.ndim not in (2, 3) or mask.size == 0:
        raise SkinsegInputError(
            f"{source}: mask has shape {mask.shape}; need (depth, width) or "
            "(n_bscans, depth, width)."
        )
    band = mask if mask.dtype == bool else mask > threshold
    depth = band.shape[-2]
    has_band = band.any(axis=-2, keepdims=True)
    first = np.argmax(band, axis=-2)[..., None, :]
    last = depth - 1 - np.argmax(band[..., ::-1, :], axis=-2)[..., None, :]
    rows = np.arange(depth)[:, None]
    labels = np.where(rows > last, _DERMIS, np.where(rows >= first, _EPIDERMIS, 0))
    return np.where(has_band, labels, 0).astype(np.uint8)
