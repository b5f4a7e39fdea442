"""Agreement between a segmentation and its truth: Dice, boundary error, correlation.

Small, general functions shared by the benchmarks, training validation and the nerve
workflow. Boundary maps are depths in pixels with NaN where a boundary is absent
(:mod:`skinseg.measure.boundaries`); NaN pairs are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient ``2 |P ∩ T| / (|P| + |T|)`` of two boolean masks.

    Returns NaN when both masks are empty.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    _check_same_shape(pred, truth)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(pred, truth).sum()) / total


def dice_per_class(
    pred: np.ndarray, truth: np.ndarray, classes: Iterable[int] | None = None
) -> dict[int, float]:
    """Dice of each class value between two label arrays.

    Parameters
    ----------
    pred, truth
        Integer label arrays of the same shape.
    classes
        Class values to score; by default every non-zero value found in either array.

    Returns
    -------
    dict mapping class value → Dice (NaN for a class absent from both).
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    _check_same_shape(pred, truth)
    if classes is None:
        classes = [int(c) for c in np.union1d(np.unique(pred), np.unique(truth)) if c != 0]
    return {int(c): dice(pred == c, truth == c) for c in classes}


def boundary_mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute difference of two boundary depth maps, over pairs where both exist.

    Returns NaN when no pair has both values.
    """
    diff = _finite_pairs(pred, truth)
    return float(np.mean(np.abs(diff[0] - diff[1]))) if diff[0].size else float("nan")


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays over pairs where both are finite.

    Returns NaN when fewer than two pairs remain or either side is constant.
    """
    x, y = _finite_pairs(a, b)
    if x.size < 2:
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def thickness_correlation(
    pred_top: np.ndarray, pred_bottom: np.ndarray, true_top: np.ndarray, true_bottom: np.ndarray
) -> float:
    """Pearson correlation of per-column layer thickness (bottom − top) with the truth."""
    return pearson_r(np.asarray(pred_bottom) - pred_top, np.asarray(true_bottom) - true_top)


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected (2-D) or 26-connected (3-D) components of a boolean mask."""
    mask = np.asarray(mask, dtype=bool)
    return int(ndi.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))[1])


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: prediction {a.shape}, truth {b.shape}")


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_same_shape(a, b)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]
