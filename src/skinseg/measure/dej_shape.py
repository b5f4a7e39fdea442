"""DEJ shape from an en-face DEJ depth map: undulation (interdigitation) index and roughness.

Maps are ``(n_bscans, width)`` in µm of physical depth, NaN where the DEJ was not found.
Each B-scan (row of the map) is one DEJ contour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

CONTOUR_SIGMA_PX = 0.0
"""Default smoothing (Gaussian σ, lateral pixels) of the DEJ before its contour length is
taken: none. A DEJ found from labels moves in half- or whole-pixel steps, and the
staircase adds a little length (on tilted flat phantoms, index 1.005 to 1.016 instead of
1.000); smoothing removes that but shortens real, sharp rete ridges more (on a rete-ridge
phantom at the face-dev pixel sizes, true index 1.026: σ = 0 reads 1.028, σ = 0.5 px
reads 1.019). Raise it for finely sampled, strongly tilted scans."""

ROUGHNESS_SIGMA_UM = 50.0
"""Default Gaussian σ (µm, along the B-scan) of the smoothed DEJ (:func:`smooth_profiles`)
that roughness is measured from: undulations finer than about this scale count as
roughness, broader ones (and tilt) do not."""


def smooth_map(values: np.ndarray, sigma_px: float | Sequence[float]) -> np.ndarray:
    """Gaussian smoothing that ignores NaN (normalised convolution).

    Parameters
    ----------
    values
        Array with NaN where there is no measurement.
    sigma_px
        Gaussian σ in pixels, one value or one per axis (0 leaves an axis alone).

    Returns
    -------
    ndarray float64 of the same shape: the weighted mean of the measured neighbours;
    NaN where no measured value lies within reach.
    """
    values = np.asarray(values, dtype=np.float64)
    measured = np.isfinite(values)
    num = ndimage.gaussian_filter(np.where(measured, values, 0.0), sigma_px, mode="constant")
    den = ndimage.gaussian_filter(measured.astype(np.float64), sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9, num / den, np.nan)


def smooth_profiles(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian-weighted local straight-line fit along the last axis, ignoring NaN.

    Unlike a plain Gaussian mean, it keeps a straight (tilted) profile exactly as it is,
    up to its ends and the edges of gaps, so tilt alone never reads as undulation or
    roughness.

    Parameters
    ----------
    values
        Profiles ``(..., n)`` with NaN where there is no measurement.
    sigma_px
        Gaussian σ in pixels along the last axis; 0 returns the values unchanged.

    Returns
    -------
    ndarray float64 of the same shape; NaN where no measured value lies within reach.
    """
    z = np.asarray(values, dtype=np.float64)
    if sigma_px <= 0:
        return z.copy()
    measured = np.isfinite(z)
    w = measured.astype(np.float64)
    zw = np.where(measured, z, 0.0)
    x = np.arange(z.shape[-1], dtype=np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter1d(a, sigma_px, axis=-1, mode="constant")

    s0 = blur(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x, mean_z = blur(w * x) / s0, blur(zw) / s0
        var = blur(w * x * x) / s0 - mean_x**2
        cov = blur(zw * x) / s0 - mean_x * mean_z
        slope = np.where(var > 1e-6, cov / var, 0.0)  # one point within reach: its value
        fit = mean_z + slope * (x - mean_x)
    return np.where(s0 > 1e-9, fit, np.nan)


def undulation_index(
    dej_um: np.ndarray, lateral_um: float, contour_sigma_px: float = CONTOUR_SIGMA_PX
) -> tuple[np.ndarray, float]:
    """DEJ contour length ÷ straight length, per B-scan and overall.

    The contour is the DEJ polyline through consecutive measured A-scans (a gap breaks it),
    optionally smoothed first (:func:`smooth_profiles`, :data:`CONTOUR_SIGMA_PX`).
    The straight length of each unbroken piece is the chord between its ends, so a flat
    but tilted DEJ reads 1.0.

    Parameters
    ----------
    dej_um
        DEJ depth map ``(n_bscans, width)`` in µm (NaN = not measured).
    lateral_um
        Lateral pixel size (µm) along the B-scan.
    contour_sigma_px
        σ of the smoothing along the B-scan in pixels; 0 (default) measures the raw contour.

    Returns
    -------
    per_bscan
        ``(n_bscans,)`` float64 index, NaN for a B-scan with no two adjacent measured A-scans.
    overall
        Summed contour length ÷ summed straight length over all B-scans (NaN if none).
    """
    z = np.atleast_2d(np.asarray(dej_um, dtype=np.float64))
    measured = np.isfinite(z)
    z = np.where(measured, smooth_profiles(z, contour_sigma_px), np.nan)
    step = np.hypot(lateral_um, np.diff(z, axis=1))
    linked = np.isfinite(step)
    contour = np.where(linked, step, 0.0).sum(axis=1)
    # every unbroken piece runs from a start (measured, left neighbour not) to an end
    pad = np.pad(measured, ((0, 0), (1, 1)))
    starts = pad[:, 1:-1] & ~pad[:, :-2]
    ends = pad[:, 1:-1] & ~pad[:, 2:]
    rows_s, cols_s = np.nonzero(starts)
    _, cols_e = np.nonzero(ends)  # same row-major order: the k-th end closes the k-th start
    chords = np.hypot((cols_e - cols_s) * lateral_um, z[rows_s, cols_e] - z[rows_s, cols_s])
    straight = np.bincount(rows_s, weights=chords, minlength=z.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bscan = np.where(straight > 0, contour / straight, np.nan)
    total = straight.sum()
    overall = float(contour.sum() / total) if total > 0 else float("nan")
    return per_bscan, overall


def dej_roughness(
    dej_um: np.ndarray, lateral_um: float, sigma_um: float = ROUGHNESS_SIGMA_UM
) -> tuple[np.ndarray, float]:
    """RMS deviation (µm) of the DEJ from itself smoothed along each B-scan.

    Parameters
    ----------
    dej_um
        DEJ depth map ``(n_bscans, width)`` in µm (NaN = not measured).
    lateral_um
        Lateral pixel size (µm).
    sigma_um
        Gaussian σ of the smoothed DEJ in µm (:data:`ROUGHNESS_SIGMA_UM`).

    Returns
    -------
    per_bscan
        ``(n_bscans,)`` RMS deviation in µm, NaN for a B-scan with no measured A-scan.
    overall
        RMS deviation over every measured A-scan (NaN if none).

    Notes
    -----
    A DEJ found from labels is quantised to half-pixel steps, which alone gives about
    0.29 axial pixel of roughness; sub-pixel DEJs from probabilities avoid that floor.
    """
    if not sigma_um > 0:
        raise ValueError(f"roughness smoothing σ must be a positive number of µm, got {sigma_um}")
    z = np.atleast_2d(np.asarray(dej_um, dtype=np.float64))
    squared = (z - smooth_profiles(z, sigma_um / lateral_um)) ** 2
    measured = np.isfinite(squared)
    n = measured.sum(axis=1)
    sums = np.where(measured, squared, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bscan = np.sqrt(np.where(n > 0, sums / n, np.nan))
    overall = float(np.sqrt(sums.sum() / n.sum())) if n.sum() > 0 else float("nan")
    return per_bscan, overall
