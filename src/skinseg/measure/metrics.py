"""Agreement between a segmentation and its truth: Dice, boundary error, correlation.

Small, general functions shared by the benchmarks, training validation and the nerve
workflow. Boundary maps are depths in pixels with NaN where a boundary is absent
(:mod:`skinseg.measure.boundaries`); NaN pairs are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment


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


def runs_per_column(mask: np.ndarray) -> np.ndarray:
    """Number of separate vertical runs of True per column (A-scan) of a mask.

    A layer drawn once per A-scan has one run; a DEJ found twice or an island above or
    below a layer adds runs, which 8-connected components per B-scan miss when the pieces
    touch diagonally.

    Parameters
    ----------
    mask
        Boolean ``(..., depth, width)``; depth is the second-to-last axis.

    Returns
    -------
    ndarray ``(..., width)`` of int: runs per column (0 where the column is all False).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim < 2:
        raise ValueError(f"mask must be (..., depth, width), got shape {mask.shape}")
    starts = mask[..., 1:, :] & ~mask[..., :-1, :]
    return (mask[..., 0, :].astype(np.int64) + starts.sum(axis=-2)).astype(np.int64)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: prediction {a.shape}, truth {b.shape}")


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_same_shape(a, b)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def modified_dice(pred: np.ndarray, truth: np.ndarray, k: float = 1) -> float:
    """The reference study's modified Dice: predicted pixels within ``k`` px of the truth are hits.

    ``|TP_k| / ((|P| + |T ∪ TP_k|) / 2)`` where ``TP_k`` are predicted pixels at most
    ``k`` px (Euclidean, centre to centre) from a true pixel; ``k = 0`` is the plain
    Dice. Thin structures (nerve fibres) whose width is not the point get credit for
    being in the right place. NaN when both masks are empty.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    _check_same_shape(pred, truth)
    if not truth.any():
        return float("nan") if not pred.any() else 0.0
    hits = pred & (ndi.distance_transform_edt(~truth) <= k)
    denom = int(pred.sum()) + int((truth | hits).sum())
    return 2.0 * int(hits.sum()) / denom


class CountAgreement(NamedTuple):
    """Agreement of per-image counts with the truth."""

    r: float
    """Pearson correlation (NaN for fewer than two images or constant counts)."""
    mae: float
    """Mean absolute count error per image."""
    bias: float
    """Mean signed error (prediction − truth)."""
    n: int
    """Number of images."""


def count_metrics(pred_counts: np.ndarray, true_counts: np.ndarray) -> CountAgreement:
    """Pearson r, mean absolute and mean signed error of counts, one pair per image."""
    pred = np.asarray(pred_counts, dtype=np.float64).ravel()
    true = np.asarray(true_counts, dtype=np.float64).ravel()
    _check_same_shape(pred, true)
    if pred.size == 0:
        return CountAgreement(float("nan"), float("nan"), float("nan"), 0)
    err = pred - true
    return CountAgreement(pearson_r(pred, true), float(np.abs(err).mean()), float(err.mean()), int(pred.size))


class PointMatch(NamedTuple):
    """Points matched one to one within a distance."""

    precision: float
    """Matched / predicted (NaN without predictions)."""
    recall: float
    """Matched / true (NaN without true points)."""
    matched: int
    pred_index: np.ndarray
    """Indices of the matched predicted points."""
    true_index: np.ndarray
    """Indices of their true partners."""


def match_points(pred: np.ndarray, truth: np.ndarray, max_dist: float) -> PointMatch:
    """One-to-one matching of points within ``max_dist`` minimising the total distance.

    The Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on the distance
    matrix, pairs further apart than ``max_dist`` forbidden. Points are ``(n, 2)`` in any
    unit, the same as ``max_dist`` (e.g. px, or µm after multiplying by the pixel size).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    dist = np.hypot(*(pred[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    cost = np.where(dist <= max_dist, dist, max_dist * 10 + 1.0)
    pi, ti = linear_sum_assignment(cost) if dist.size else (np.empty(0, int), np.empty(0, int))
    ok = dist[pi, ti] <= max_dist
    pi, ti = pi[ok], ti[ok]
    n = int(ok.sum())
    precision = n / len(pred) if len(pred) else float("nan")
    recall = n / len(truth) if len(truth) else float("nan")
    return PointMatch(precision, recall, n, pi, ti)


class CrossingScore(NamedTuple):
    """How well crossings found in a set of images agree with the truth."""

    counts: CountAgreement
    """Per-image count agreement."""
    precision: float
    """Found crossings within the distance of a true one (matched one to one, pooled)."""
    recall: float
    """True crossings with a found one within the distance (pooled)."""


def score_crossings(
    pred_points: Iterable[np.ndarray], true_points: Iterable[np.ndarray], max_dist: float
) -> CrossingScore:
    """Counts and locations of found crossings against the truth, one entry per image.

    Points are ``(n, 2)`` arrays in the unit of ``max_dist`` (µm: multiply px by the
    pixel size first). Locations are matched one to one per image (:func:`match_points`)
    and precision and recall pooled over all images.
    """
    pred, true = list(pred_points), list(true_points)
    if len(pred) != len(true):
        raise ValueError(f"{len(pred)} images of found points, {len(true)} of true points")
    matches = [match_points(p, t, max_dist) for p, t in zip(pred, true)]
    n_pred, n_true = sum(len(p) for p in pred), sum(len(t) for t in true)
    hits = sum(m.matched for m in matches)
    return CrossingScore(
        count_metrics([len(p) for p in pred], [len(t) for t in true]),
        hits / n_pred if n_pred else float("nan"),
        hits / n_true if n_true else float("nan"),
    )
