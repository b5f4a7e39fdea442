"""Network input from raw OCT intensities, shared by training and inference.

A model file records how raw intensities become network input
(:attr:`skinseg.models.files.ModelInfo.normalisation`); training and the inference engine
both call :func:`intensity_range` and :func:`normalise` with that record, so the network
sees the same numbers in both. Supported records:

``{"kind": "percentile", "low": 1.0, "high": 99.5}``
    The ``low`` and ``high`` percentiles of the tomogram map to 0 and 1. Optional
    ``"scope": "bscan"`` takes the percentiles of each B-scan on its own instead.
``{"kind": "fixed", "low": 0, "high": 65535}``
    Fixed raw values map to 0 and 1.

Both accept ``"clip": false`` to keep values outside [0, 1] (clipped by default).
Networks using neighbouring B-scans as channels order them by :func:`neighbour_indices`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from skinseg import progress

DEFAULT_NORMALISATION: dict[str, Any] = {"kind": "percentile", "low": 1.0, "high": 99.5}
"""The record new models get unless their trainer chooses another."""

_KINDS = ("percentile", "fixed")


def _check(spec: Mapping[str, Any]) -> str:
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown intensity normalisation {dict(spec)!r}; kinds: {_KINDS}")
    if spec.get("scope", "volume") not in ("volume", "bscan"):
        raise ValueError(f"normalisation scope must be 'volume' or 'bscan', got {spec['scope']!r}")
    return kind


def _percentiles(spec: Mapping[str, Any]) -> list[float]:
    return [float(spec.get("low", 1.0)), float(spec.get("high", 99.5))]


def per_bscan(spec: Mapping[str, Any]) -> bool:
    """Whether ``spec`` takes its range from each B-scan rather than the tomogram."""
    return _check(spec) == "percentile" and spec.get("scope", "volume") == "bscan"


def intensity_range(
    image: Any, spec: Mapping[str, Any], *, max_bscans: int = 16
) -> tuple[float, float]:
    """Raw values that ``spec`` maps to 0 and 1 for a whole B-scan or tomogram.

    Parameters
    ----------
    image
        ``(depth, width)`` or ``(n_bscans, depth, width)``; numpy or lazy (dask, zarr,
        memory map). Percentiles come from up to ``max_bscans`` evenly spaced B-scans,
        so a lazy tomogram is never read whole.
    spec
        A normalisation record (module docstring).

    Returns
    -------
    (low, high) floats; ``low == high`` for a constant image. NaN if the sample holds NaN.
    """
    kind = _check(spec)
    if kind == "fixed":
        return float(spec["low"]), float(spec["high"])
    n = image.shape[0] if len(image.shape) == 3 else 1
    picks = np.unique(np.linspace(0, n - 1, min(n, max_bscans)).round().astype(int))
    if len(image.shape) == 3:  # one B-scan at a time: any lazy array type reads that way
        sample = np.stack([np.asarray(image[int(i)], dtype=np.float32) for i in picks])
    else:
        sample = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(sample, _percentiles(spec))
    if high <= low:  # mostly constant: fall back to the full range of the sample
        low, high = sample.min(), sample.max()
    return float(low), float(high)


def normalise(
    data: Any, spec: Mapping[str, Any], value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Raw intensities → float32 network input.

    Parameters
    ----------
    data
        B-scans ``(..., depth, width)``, any real dtype (lazy arrays are read).
    spec
        A normalisation record (module docstring).
    value_range
        ``(low, high)`` from :func:`intensity_range` of the whole tomogram, so every
        batch of B-scans is scaled alike. Computed from ``data`` itself when omitted
        (then ``data`` should be the whole tomogram or B-scan). Ignored for
        ``"scope": "bscan"``, which scales each B-scan by its own percentiles.

    Returns
    -------
    float32 array of ``data``'s shape; a constant input gives zeros.
    """
    x = np.array(data, dtype=np.float32)  # always a copy: scaled in place below
    if per_bscan(spec):
        q = np.percentile(x, _percentiles(spec), axis=(-2, -1))
        low, high = q[0][..., None, None], q[1][..., None, None]
    else:
        low, high = value_range if value_range is not None else intensity_range(x, spec)
    x -= low
    x /= np.maximum(np.asarray(high, np.float32) - low, np.float32(1e-12))
    if spec.get("clip", True):
        np.clip(x, 0.0, 1.0, out=x)
    return x


def neighbour_indices(indices: Any, n_bscans: int, neighbours: int) -> np.ndarray:
    """B-scans feeding each network input when neighbours are channels (edge-replicated).

    Parameters
    ----------
    indices
        B-scan indices ``(n,)`` of the inputs.
    n_bscans
        B-scans in the tomogram.
    neighbours
        ``k``: the ``k`` B-scans on each side become channels (``2k + 1`` in all).

    Returns
    -------
    int array ``(n, 2k + 1)``: row ``i`` lists ``indices[i] - k ... indices[i] + k``
    clipped to ``[0, n_bscans - 1]``; the centre channel is the B-scan itself.
    """
    offsets = np.arange(-neighbours, neighbours + 1)
    return np.clip(np.asarray(indices)[:, None] + offsets[None, :], 0, n_bscans - 1)


def surface_shifts(
    raw: np.ndarray, pixel_size_um: tuple[float, ...], above: int
) -> np.ndarray:
    """Per-column row offsets that put the skin surface ``above`` rows from the top.

    The surface is the classical method's (:func:`skinseg.segment.classical.segment_classical`)
    on the raw B-scans ``(n, depth, width)``; ``pixel_size_um`` is (depth, width) µm.
    Returns int ``(n, width)``: :func:`shift_columns` with these offsets flattens the
    B-scans to their surface, with the negated offsets it undoes that. Constant B-scans
    have no surface: their offsets are 0 (the engine makes them air).
    """
    return progress.run(iter_surface_shifts(raw, pixel_size_um, above))


def iter_surface_shifts(
    raw: np.ndarray, pixel_size_um: tuple[float, ...], above: int
) -> progress.ProgressGenerator[np.ndarray]:
    """:func:`surface_shifts`, yielding the classical method's progress."""
    from skinseg.segment.classical import iter_segment_classical  # the classical method reads no models

    shifts = np.zeros((raw.shape[0], raw.shape[-1]), np.int64)
    varied = np.flatnonzero([np.ptp(np.asarray(raw[i])) != 0 for i in range(raw.shape[0])])  # NaN: varied
    if varied.size == 0:
        return shifts
    scans = raw if varied.size == raw.shape[0] else np.stack([np.asarray(raw[i]) for i in varied])
    found = yield from iter_segment_classical(scans, pixel_size_um=(1.0, *pixel_size_um[-2:]))
    shifts[varied] = np.floor(found.surface).astype(np.int64) - above
    return shifts


def shift_columns(data: Any, shifts: np.ndarray, rows: int) -> np.ndarray:
    """Row ``k`` of column ``c`` ← row ``k + shifts[..., c]`` of ``data`` (edge-replicated).

    ``data`` is ``(..., depth, width)``; ``shifts`` is ``(width,)`` or has ``data``'s leading
    axes (some or all) then ``width``, e.g. ``(n, width)`` for ``(n, channels, depth, width)``.
    The result has ``rows`` rows. Rows outside ``data`` repeat its first or last row, so
    labels above the window stay air and below it stay the deepest class.
    """
    data = np.asarray(data)
    shifts = shifts.reshape(*shifts.shape[:-1], *(1,) * (data.ndim - shifts.ndim), shifts.shape[-1])
    index = np.clip(np.arange(rows)[:, None] + shifts, 0, data.shape[-2] - 1)
    return np.take_along_axis(data, np.broadcast_to(index, (*data.shape[:-2], rows, data.shape[-1])), -2)
