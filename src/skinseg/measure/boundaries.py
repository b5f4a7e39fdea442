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
    labels = np.asarray(labels)
    # Skin classes are the contiguous values SC..dermis: a range check beats np.isin 3-5×.
    return _first_row((labels >= _SC) & (labels <= _DERMIS))


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


_BELOW_SC = np.array([_EPIDERMIS, _DEJ, _DERMIS])


def stratum_corneum_bottom(labels: np.ndarray) -> np.ndarray:
    """Bottom of the stratum corneum per A-scan: top of the first epidermis/DEJ/dermis row.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where the A-scan has no
    stratum corneum above its epidermis (or nothing below it).
    """
    labels = np.asarray(labels)
    top = _first_row(labels == _SC)
    bottom = _first_row((labels >= _EPIDERMIS) & (labels <= _DERMIS))  # 4, 5, 6: consecutive
    return np.where(top < bottom, bottom, np.nan).astype(np.float32)


def crossing_depth(p_below: np.ndarray) -> np.ndarray:
    """Sub-pixel depth where the probability of lying below a boundary first reaches 0.5.

    Row ``r``'s probability stands at its centre ``r + 0.5``; the depth is interpolated
    linearly between the centres of the last row under 0.5 and the first at or over it
    (above the image the probability is taken as 0). Hard 0/1 probabilities give the same
    depth as the labels convention: the top edge of the first row below.

    Parameters
    ----------
    p_below
        Probability ``(..., depth, width)`` that each pixel lies below the boundary.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where 0.5 is never reached.
    """
    p = np.asarray(p_below, dtype=np.float32)
    below = p >= 0.5
    row = np.argmax(below, axis=-2)[..., None, :]
    p1 = np.take_along_axis(p, row, axis=-2)[..., 0, :]
    p0 = np.where(row > 0, np.take_along_axis(p, np.maximum(row - 1, 0), axis=-2), 0.0)[..., 0, :]
    depth = row[..., 0, :] - 0.5 + (0.5 - p0) / np.maximum(p1 - p0, 1e-12)
    depth[~np.take_along_axis(below, row, axis=-2)[..., 0, :]] = np.nan
    return depth.astype(np.float32)


def _class_sum(probabilities: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Summed probability of ``classes`` from ``(n_classes, ..., depth, width)``."""
    return np.asarray(probabilities[classes], dtype=np.float32).sum(axis=0)


def surface_depth_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Sub-pixel skin surface: where P(any skin class) first reaches 0.5.

    Parameters
    ----------
    probabilities
        Class probabilities ``(n_classes, ..., depth, width)`` in the OCT class table.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where no skin.
    """
    return crossing_depth(_class_sum(probabilities, _SKIN))


def stratum_corneum_bottom_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Sub-pixel bottom of the stratum corneum where at least half a pixel of it is expected.

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where the A-scan holds less
    than 0.5 pixel of stratum corneum probability.
    """
    probabilities = np.asarray(probabilities)
    bottom = crossing_depth(_class_sum(probabilities, _BELOW_SC))
    has_sc = np.asarray(probabilities[_SC], dtype=np.float32).sum(axis=-2) >= 0.5
    return np.where(has_sc, bottom, np.nan).astype(np.float32)


def dej_depth_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Sub-pixel DEJ: median depth of the DEJ probability mass, else top of the dermis.

    Where an A-scan holds at least half a pixel of DEJ probability, the DEJ is the depth
    that splits that mass in two (each row spread evenly over ``[r, r + 1)``; a hard band
    gives its centre, as :func:`dej_depth`). Elsewhere it is where P(DEJ or dermis) first
    reaches 0.5 (:func:`crossing_depth`).

    Returns
    -------
    ndarray ``(..., width)`` float32, depth in pixels; NaN where neither is found.
    """
    probabilities = np.asarray(probabilities)
    p_dej = np.asarray(probabilities[_DEJ], dtype=np.float32)
    cum = np.cumsum(p_dej, axis=-2)
    half = cum[..., -1:, :] / 2.0
    row = np.argmax(cum >= half, axis=-2)[..., None, :]
    p_row = np.take_along_axis(p_dej, row, axis=-2)
    before = np.take_along_axis(cum, row, axis=-2) - p_row
    centre = (row + (half - before) / np.maximum(p_row, 1e-12))[..., 0, :]
    top_of_dermis = crossing_depth(_class_sum(probabilities, np.array([_DEJ, _DERMIS])))
    return np.where(half[..., 0, :] >= 0.25, centre, top_of_dermis).astype(np.float32)
