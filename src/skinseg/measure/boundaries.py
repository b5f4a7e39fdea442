"""Skin surface and DEJ depth per A-scan from OCT labels.

Depth convention (shared with the phantoms): row ``r`` covers depths ``[r, r + 1)`` in
pixels, and a boundary at depth ``d`` makes row ``r`` lie below it when ``r + 0.5 >= d``.
A boundary found from labels is the top edge of the first row below it, so it is within
half a pixel of the true sub-pixel depth. Depth is the second-to-last axis.
"""

from __future__ import annotations

import numpy as np

from skinseg.classes import OCT_CLASSES

_SC = OCT_CLASSES.value_of("stratum corneum")
_EPIDERMIS = OCT_CLASSES.value_of("epidermis")
_DEJ = OCT_CLASSES.value_of("DEJ")
_DERMIS = OCT_CLASSES.value_of("dermis")
_SKIN = np.array([_SC, _EPIDERMIS, _DEJ, _DERMIS])


def _first_row(mask: np.ndarray) -> np.ndarray:
    """Index of the first True row along the depth axis (NaN where none)."""
    first = np.argmax(mask, axis=-2).astype(np.float32)
    first[~mask.any(axis=-2)] = np.nan
    return first


def _last_row(mask: np.ndarray) -> np.ndarray:
    """Index of the last True row along the depth axis (NaN where none)."""
    depth = mask.shape[-2]
    last = (depth - 1 - np.argmax(mask[..., ::-1, :], axis=-2)).astype(np.float32)
    last[~mask.any(axis=-2)] = np.nan
    return last


def surface_depth(labels: np.ndarray) -> np.ndarray:
    """Skin surface per A-scan: top of the stratum corneum, else of any skin class.

    Parameters
    ----------
    labels
        OCT labels ``(..., depth, width)`` in the OCT class table.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where the A-scan has no skin.
    """
    return _first_row(np.isin(np.asarray(labels), _SKIN))


def dej_depth(labels: np.ndarray) -> np.ndarray:
    """DEJ per A-scan: centre of the DEJ band where labelled, else top of the dermis.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where neither is present.
    """
    labels = np.asarray(labels)
    band = labels == _DEJ
    centre = (_first_row(band) + _last_row(band) + 1.0) / 2.0
    top_of_dermis = _first_row(labels == _DERMIS)
    return np.where(np.isnan(centre), top_of_dermis, centre).astype(np.float32)
