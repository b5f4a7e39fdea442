"""Minimum-cost paths across the columns of B-scans, and the column tools they run on.

A path takes one row per column; between neighbouring columns it may move by at most
``max_step`` rows and pays ``penalty`` per row moved. The recursion runs column by
column and is vectorised over rows and over a leading batch axis, so a whole stack of
B-scans is solved in one pass over its width. All arrays here are ``(n, rows, width)``.
"""

from __future__ import annotations

import numpy as np


def min_cost_paths(cost: np.ndarray, *, max_step: int = 1, penalty: float = 0.0) -> np.ndarray:
    """Row per column of the minimum-cost left-to-right path through ``cost``.

    Parameters
    ----------
    cost
        Cost ``(..., rows, width)``; the path minimises the sum of cost along it.
        ``inf`` marks forbidden pixels (every column needs at least one finite row).
    max_step
        Largest row change between neighbouring columns (≥ 0).
    penalty
        Extra cost per row moved between neighbouring columns (≥ 0).

    Returns
    -------
    ndarray ``(..., width)`` of int64 row indices.
    """
    if max_step < 0 or penalty < 0:
        raise ValueError(f"max_step and penalty must be >= 0, got {max_step}, {penalty}")
    cost = np.asarray(cost, dtype=np.float32)
    *batch, rows, width = cost.shape
    flat = cost.reshape(-1, rows, width)
    step = min(int(max_step), rows - 1)
    moves = np.zeros((flat.shape[0], rows, width), dtype=np.int8 if step < 128 else np.int16)
    acc = flat[..., 0].copy()
    best = np.empty_like(acc)
    shifted = np.full_like(acc, np.inf)
    better = np.empty(acc.shape, dtype=bool)
    for x in range(1, width):
        np.copyto(best, acc)
        arg = moves[..., x]
        for d in range(1, step + 1):
            for sign in (-1, 1):
                # arriving at row y from row y + sign * d of the previous column
                if sign > 0:
                    shifted[:, :-d] = acc[:, d:]
                    shifted[:, rows - d :] = np.inf
                else:
                    shifted[:, d:] = acc[:, :-d]
                    shifted[:, :d] = np.inf
                shifted += np.float32(penalty * d)
                np.less(shifted, best, out=better)
                np.copyto(best, shifted, where=better)
                arg[better] = sign * d
        np.add(best, flat[..., x], out=acc)
    path = np.empty((flat.shape[0], width), dtype=np.int64)
    path[:, -1] = np.argmin(acc, axis=1)
    index = np.arange(flat.shape[0])
    for x in range(width - 1, 0, -1):
        path[:, x - 1] = path[:, x] + moves[index, path[:, x], x]
    return path.reshape(*batch, width)


def window_means(
    image: np.ndarray, above: np.ndarray | int, below: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the ``above`` rows over each row ``k``, and of the ``below`` rows from it down.

    Window lengths are one per B-scan (``(n,)``) or shared, and are cut at the image
    edges (an empty window gives 0).
    """
    n, rows, width = image.shape
    csum = np.zeros((n, rows + 1, width), dtype=np.float64)
    np.cumsum(image, axis=1, out=csum[:, 1:])
    k = np.broadcast_to(np.arange(rows), (n, rows))
    top = np.maximum(k - np.broadcast_to(np.asarray(above), (n,))[:, None], 0)
    bottom = np.minimum(k + np.broadcast_to(np.asarray(below), (n,))[:, None], rows)

    def total(index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(csum, index[:, :, None], axis=1)

    mean_above = (total(k) - total(top)) / np.maximum(k - top, 1)[:, :, None]
    mean_below = (total(bottom) - total(k)) / np.maximum(bottom - k, 1)[:, :, None]
    return mean_above.astype(np.float32), mean_below.astype(np.float32)


def flatten_under(image: np.ndarray, surface: np.ndarray, rows: int) -> np.ndarray:
    """Resample so that row ``k`` is centred ``k`` pixels under ``surface`` ``(n, width)``.

    Linear interpolation along depth; rows past the image repeat its last row.
    """
    position = surface[:, None, :] - 0.5 + np.arange(rows, dtype=np.float32)[:, None]
    base = np.clip(np.floor(position).astype(np.int64), 0, image.shape[1] - 2)
    fraction = np.clip(position - base, 0.0, 1.0)
    upper = np.take_along_axis(image, base, axis=1)
    lower = np.take_along_axis(image, base + 1, axis=1)
    return upper + fraction * (lower - upper)


def level_crossing(
    image: np.ndarray, rows: np.ndarray, up: int, down: int, level: float
) -> np.ndarray:
    """Sub-pixel depth where each column rises through ``level`` from dark to its peak.

    Around ``rows`` ``(n, width)``, the dark level is the median of the ``up`` rows above
    and the peak the maximum of the ``down + 1`` rows from ``rows`` down; the depth is
    interpolated between the last row under ``dark + level × (peak − dark)`` above the
    peak and the next row. Bright lines higher up (a glass window) are thus ignored.
    """
    offsets = np.arange(-up, down + 1)
    index = np.clip(rows[:, None, :] + offsets[:, None], 0, image.shape[1] - 1)
    profile = np.take_along_axis(image, index, axis=1)
    dark = np.median(profile[:, :up], axis=1)
    peak_row = up + profile[:, up:].argmax(axis=1)
    peak = np.take_along_axis(profile, peak_row[:, None], axis=1)[:, 0]
    threshold = dark + level * (peak - dark)
    position = np.arange(offsets.size)[:, None]
    under = (profile < threshold[:, None]) & (position < peak_row[:, None])
    j = np.clip(np.where(under, position, 0).max(axis=1), 0, offsets.size - 2)
    a = np.take_along_axis(profile, j[:, None], axis=1)[:, 0]
    b = np.take_along_axis(profile, j[:, None] + 1, axis=1)[:, 0]
    fraction = np.clip((threshold - a) / np.maximum(b - a, 1e-6), 0.0, 1.0)
    # profile entry j is row rows + offsets[j], whose centre lies at depth row + 0.5
    return (rows + offsets[j] + fraction + 0.5).astype(np.float32)
