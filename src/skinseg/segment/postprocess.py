"""Anatomical post-processing of OCT layer predictions.

Along every A-scan (image column) the layers of skin follow one order from the top down:
air 0, glass 1, gel 2, stratum corneum 3, epidermis 4, DEJ 5, dermis 6 (:data:`OCT_CLASSES`,
value order = depth order). Three steps turn per-pixel class probabilities into labels
that respect it, and remove the faults reported for skin U-Nets (a DEJ twice as thick,
island fragments, gaps in dark regions):

1. **Monotone labelling.** Per A-scan, the labelling with classes non-decreasing
   downwards that maximises the summed log-probability (dynamic programming over
   (row, class), vectorised over columns). One pass removes vertical islands, a DEJ
   predicted twice, and classes out of order. The programme runs only where needed: on
   A-scans whose per-pixel argmax is out of order, and between the first row that is not
   argmax-first-class and the last that is not argmax-last-class.
2. **Small islands.** Connected regions (per B-scan, 8-connected) of one class smaller
   than ``min_island_px`` pixels are forbidden to that class and their A-scans labelled
   again. Background is left alone, and so is the DEJ: a thin band breaks into short
   pieces where it is steep, and step 3 draws it again anyway.
3. **One thin DEJ band.** The DEJ per A-scan is the centre of its band (else the top of
   the dermis); A-scans with tissue but neither (gaps in dark regions) take it by linear
   interpolation from the other A-scans of the B-scan. The tissue under the stratum
   corneum is then drawn again: epidermis, a DEJ band centred on the DEJ, dermis. The
   band is as thick as the B-scan's predicted band on average, but at least one pixel and
   at most ``max_dej_um`` (the seed's experts and the phantoms draw 5 µm): a band
   predicted twice too thick is drawn at the right thickness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from skinseg.classes import OCT_CLASSES

__all__ = ["PostprocessParams", "monotone_path", "postprocess_labels", "postprocess_probabilities"]

_EPIDERMIS = OCT_CLASSES.value_of("epidermis")
_DEJ = OCT_CLASSES.value_of("DEJ")
_DERMIS = OCT_CLASSES.value_of("dermis")
_BACKGROUND = OCT_CLASSES.value_of("background")
_LOG_FLOOR = 1e-6
_FORBIDDEN = np.float32(-1e4)
_ISLAND_ROUNDS = 2
_LABELS_CHUNK = 8
_CONTEXT_PX = 15
_GATHER_FRACTION = 0.25


@dataclass(frozen=True)
class PostprocessParams:
    """Settings of the anatomical post-processing.

    Attributes
    ----------
    max_dej_um
        Thickest DEJ band drawn (µm along the axial pixel size); the seed paper's experts
        and the phantoms draw 5 µm.
    min_island_px
        Regions of one class smaller than this (pixels, per B-scan) are removed.
    label_confidence
        Probability given to a hard label's own class by :func:`postprocess_labels`.
    """

    max_dej_um: float = 5.0
    min_island_px: int = 48
    label_confidence: float = 0.9

    def __post_init__(self) -> None:
        valid = self.max_dej_um > 0 and self.min_island_px >= 0
        if not (valid and 0.5 < self.label_confidence < 1):
            raise ValueError(
                f"invalid post-processing settings {self}: max_dej_um > 0, min_island_px >= 0, "
                "label_confidence in (0.5, 1)."
            )


def monotone_path(scores: np.ndarray) -> np.ndarray:
    """Per A-scan, the class sequence non-decreasing downwards with the highest summed score.

    Parameters
    ----------
    scores
        ``(n_classes, ..., depth, width)``: score (log-probability) of each class at each
        pixel, classes in their top-down order.

    Returns
    -------
    int8 ``(..., depth, width)``: class index per pixel, never decreasing downwards.
    """
    n_classes, *lead, depth, width = scores.shape
    s = scores.reshape(n_classes, -1, depth, width)
    # came_from[r, c]: class at row r - 1 on the best path reaching class c at row r
    came_from = np.empty((depth, n_classes, s.shape[1], width), np.int8)
    came_from[:] = np.arange(n_classes, dtype=np.int8)[:, None, None]
    lower = np.empty(s.shape[1:2] + (width,), bool)
    total = s[:, :, 0, :].astype(np.float32)
    for r in range(1, depth):
        for c in range(1, n_classes):  # total[c] becomes the best over classes <= c
            np.greater(total[c - 1], total[c], out=lower)
            np.maximum(total[c - 1], total[c], out=total[c])
            np.copyto(came_from[r, c], came_from[r, c - 1], where=lower)
        total += s[:, :, r, :]
    path = np.empty((s.shape[1], depth, width), np.int8)
    path[:, -1] = current = total.argmax(axis=0).astype(np.int8)
    scan, column = np.indices(current.shape)
    for r in range(depth - 1, 0, -1):
        path[:, r - 1] = current = came_from[r, current, scan, column]
    return path.reshape(*lead, depth, width)


def class_argmax(scores: np.ndarray) -> np.ndarray:
    """``scores.argmax(axis=0)`` as int8 (first class on ties), one pass per class.

    NumPy's argmax over the leading axis strides across memory; comparing whole class
    planes runs about 4× faster on a batch of B-scans.
    """
    best = scores[0].copy()
    index = np.zeros(best.shape, np.int8)
    higher = np.empty(best.shape, bool)
    for c in range(1, len(scores)):
        np.greater(scores[c], best, out=higher)
        index[higher] = c
        np.maximum(best, scores[c], out=best)
    return index


def _best_paths(scores: np.ndarray) -> np.ndarray:
    """:func:`monotone_path` of ``(n_classes, n, depth, width)``, solved only where needed.

    Where the per-pixel argmax is already in order down an A-scan it is the best ordered
    labelling too (it is the best of all labellings); the dynamic programme runs on the
    other A-scans, or on all when they are many (gathering them costs more than it saves).
    """
    path = class_argmax(scores)
    out_of_order = (np.diff(path, axis=-2) < 0).any(axis=-2)
    if out_of_order.mean() > _GATHER_FRACTION:
        return _solve(scores, path)
    scan, column = np.nonzero(out_of_order)
    if len(scan):
        path[scan, :, column] = _solve_ascans(scores, scan, column)
    return path


def _solve_ascans(scores: np.ndarray, scan: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Best ordered labelling of the A-scans ``(scan[i], column[i])``: ``(k, depth)``."""
    side_by_side = np.ascontiguousarray(scores[:, scan, :, column].transpose(1, 2, 0))  # C, D, k
    side_by_side = side_by_side[:, None]
    return _solve(side_by_side, class_argmax(side_by_side))[0].T


def _solve(scores: np.ndarray, argmax: np.ndarray) -> np.ndarray:
    """:func:`monotone_path` of ``(n_classes, n, depth, width)`` given its per-pixel argmax.

    Rows above the first that is not argmax-first-class anywhere take the first class in
    the best ordered labelling (it precedes every class, so the argmax costs nothing), and
    rows below the last that is not argmax-last-class anywhere take the last class: the
    dynamic programme runs on the rows between (often a small part of a B-scan).
    """
    not_first = np.flatnonzero((argmax != 0).any(axis=(0, 2)))
    not_last = np.flatnonzero((argmax != len(scores) - 1).any(axis=(0, 2)))
    top = not_first[0] if len(not_first) else argmax.shape[1]
    bottom = not_last[-1] + 1 if len(not_last) else 0
    path = np.zeros(argmax.shape, np.int8)
    path[:, max(bottom, top) :] = len(scores) - 1
    if bottom > top:
        path[:, top:bottom] = monotone_path(scores[:, :, top:bottom])
    return path


def _starts(path: np.ndarray, n_classes: int) -> np.ndarray:
    """First row of each class per A-scan, ``(n_classes + 1, n, width)``; the last is depth."""
    starts = np.empty((n_classes + 1, path.shape[0], path.shape[-1]), np.intp)
    starts[0] = 0
    for c in range(1, n_classes):
        starts[c] = np.count_nonzero(path < c, axis=-2)
    starts[-1] = path.shape[-2]
    return starts


def _small_islands(starts: np.ndarray, min_px: int) -> np.ndarray:
    """Which class runs ``(n_classes, n, width)`` belong to regions under ``min_px`` pixels.

    A region of one class is a chain of A-scans whose runs of that class touch (8-connected)
    within one B-scan; its size is the sum of their lengths.
    """
    top, bottom = starts[:-1], starts[1:]
    length = bottom - top
    present = length > 0
    touches = present[..., 1:] & present[..., :-1] & (top[..., 1:] <= bottom[..., :-1]) & (
        top[..., :-1] <= bottom[..., 1:]
    )
    first = present.copy()
    first[..., 1:] &= ~touches
    region = np.cumsum(first.ravel()).reshape(first.shape)
    size = np.bincount(region.ravel(), weights=np.where(present, length, 0).ravel())
    return present & (size[region] < min_px)


def _remove_islands(scores: np.ndarray, starts: np.ndarray, min_px: int, keep: list[int]) -> None:
    """Relabel A-scans holding small regions with those regions forbidden (``starts`` in place).

    ``scores`` ``(n_classes, n, depth, width)`` is changed meanwhile and restored on return.
    """
    changed = []
    try:
        for _ in range(_ISLAND_ROUNDS):
            small = _small_islands(starts, min_px)
            small[keep] = False
            cls, scan, column = np.nonzero(small)
            if not len(cls):
                break
            top = starts[cls, scan, column]
            length = starts[cls + 1, scan, column] - top
            offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
            pixels = tuple(np.repeat(a, length) for a in (cls, scan)) + (
                np.repeat(top, length) + offset, np.repeat(column, length))
            changed.append((pixels, scores[pixels]))
            scores[pixels] = _FORBIDDEN
            scan, column = np.unique(np.stack([scan, column]), axis=1)
            path = _solve_ascans(scores, scan, column)[..., None]  # (k, depth, 1)
            starts[:, scan, column] = _starts(path, len(scores))[..., 0]
    finally:
        for pixels, saved in reversed(changed):
            scores[pixels] = saved


def _fill_gaps(dej: np.ndarray, has_tissue: np.ndarray) -> None:
    """Interpolate, in place along each B-scan, the DEJ ``(n, width)`` where NaN under tissue."""
    columns = np.arange(dej.shape[-1])
    for row, tissue in zip(dej, has_tissue, strict=True):
        found = ~np.isnan(row)
        gap = tissue & ~found
        if gap.any() and found.any():
            row[gap] = np.interp(columns[gap], columns[found], row[found])


def _redraw_dej(
    starts: np.ndarray, epidermis: int, band: int | None, dermis: int, max_px: float
) -> None:
    """Move the band and dermis starts (in place) around one DEJ per A-scan (module docstring)."""
    depth = starts[-1]
    top_of_dermis = np.where(starts[dermis] < depth, starts[dermis], np.nan)
    dej, half = top_of_dermis, np.zeros((len(top_of_dermis), 1))
    if band is not None:
        thickness = (starts[band + 1] - starts[band]).astype(float)
        dej = np.where(thickness > 0, starts[band] + thickness / 2, top_of_dermis)
        count = np.count_nonzero(thickness, axis=-1)[:, None]
        mean = thickness.sum(axis=-1, keepdims=True) / np.maximum(count, 1)
        mean = np.where(count > 0, mean, max_px)
        half = np.clip(mean, 1.0, max(max_px, 1.0)) / 2  # B-scans without a band: the maximum
    _fill_gaps(dej, starts[epidermis] < depth)
    found = ~np.isnan(dej)
    band_top = np.clip(np.ceil(dej - half - 0.5), starts[epidermis], depth)
    dermis_top = np.clip(np.ceil(dej + half - 0.5), band_top, depth)
    if band is not None:
        starts[band] = np.where(found, band_top, starts[band])
    starts[dermis] = np.where(found, dermis_top, starts[dermis])


def _labels(starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint8 labels ``(n, depth, width)`` from class starts and the class values."""
    rows = np.arange(starts[-1, 0, 0])[None, :, None]
    labels = np.full((starts.shape[1], rows.shape[1], starts.shape[2]), values[0], np.uint8)
    for c in range(1, len(values)):
        step = np.uint8(values[c] - values[c - 1])
        labels += (rows >= starts[c][:, None, :]).astype(np.uint8) * step
    return labels


def postprocess_probabilities(
    probabilities: np.ndarray,
    *,
    axial_um: float,
    values: Sequence[int] | None = None,
    params: PostprocessParams | None = None,
    log: bool = False,
) -> np.ndarray:
    """Labels in anatomical order from per-class probabilities (module docstring).

    Parameters
    ----------
    probabilities
        ``(n_classes, ..., depth, width)``, e.g. softmax output of a batch of B-scans.
    axial_um
        Axial pixel size (µm), for the DEJ band thickness.
    values
        OCT class value of each channel (default: all of :data:`OCT_CLASSES` in order).
        A model predicting a subset (e.g. air, epidermis, dermis) passes its values.
    params
        :class:`PostprocessParams`.
    log
        ``probabilities`` are log-probabilities already, or a network's logits: adding a
        constant to all classes of a pixel changes nothing.

    Returns
    -------
    uint8 labels ``(..., depth, width)`` in :data:`OCT_CLASSES`.
    """
    params = params or PostprocessParams()
    values = np.asarray(OCT_CLASSES.values if values is None else values)
    order = np.argsort(values, kind="stable")
    values = values[order]
    p = np.asarray(probabilities)
    lead, (depth, width) = p.shape[1:-2], p.shape[-2:]
    if np.any(order != np.arange(len(order))):
        p = p[order]
    p = p.reshape(len(values), -1, depth, width)
    if log:  # changed and restored during island removal: never the caller's read-only array
        scores = p if p.dtype == np.float32 and p.flags.writeable else p.astype(np.float32)
    else:
        scores = np.log(np.maximum(p, _LOG_FLOOR, dtype=np.float32))
    starts = _starts(_best_paths(scores), len(values))
    index = {int(v): i for i, v in enumerate(values)}
    if params.min_island_px > 0:
        keep = [index[v] for v in (_BACKGROUND, _DEJ) if v in index]
        _remove_islands(scores, starts, params.min_island_px, keep)
    if _EPIDERMIS in index and _DERMIS in index:
        max_px = params.max_dej_um / axial_um
        _redraw_dej(starts, index[_EPIDERMIS], index.get(_DEJ), index[_DERMIS], max_px)
    return _labels(starts, values).reshape(*lead, depth, width)


def postprocess_labels(
    labels: np.ndarray, *, axial_um: float, params: PostprocessParams | None = None
) -> np.ndarray:
    """:func:`postprocess_probabilities` for hard OCT labels ``(..., depth, width)``.

    Each pixel's own class gets probability ``params.label_confidence``; the rest is
    shared by the classes found at that depth in the A-scans around it (within
    ``_CONTEXT_PX`` columns), so a removed island takes the class of its surroundings.
    B-scans are processed a few at a time.
    """
    params = params or PostprocessParams()
    labels = np.asarray(labels)
    values = np.asarray(OCT_CLASSES.values, dtype=labels.dtype)[:, None, None, None]
    stack = labels.reshape(-1, *labels.shape[-2:])
    out = np.empty(stack.shape, np.uint8)
    for start in range(0, len(stack), _LABELS_CHUNK):
        one_hot = (stack[None, start : start + _LABELS_CHUNK] == values).astype(np.float32)
        around = uniform_filter1d(one_hot, _CONTEXT_PX, axis=-1, mode="nearest")
        p = params.label_confidence * one_hot + (1.0 - params.label_confidence) * around
        out[start : start + _LABELS_CHUNK] = postprocess_probabilities(
            p, axial_um=axial_um, params=params
        )
    return out.reshape(labels.shape)
