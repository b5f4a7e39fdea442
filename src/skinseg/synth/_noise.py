"""Random fields for phantoms: smooth Gaussian fields and correlated speckle.

All fields are float32 and drawn from a caller's :class:`numpy.random.Generator`, so a
phantom is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi


def _kernel_energy(sigma: float) -> float:
    """Sum of squared weights of SciPy's 1-D Gaussian kernel (1 for ``sigma`` 0)."""
    if sigma <= 0:
        return 1.0
    radius = int(4.0 * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    return float(np.sum(ndi.gaussian_filter1d(impulse, sigma, mode="constant") ** 2))


def smooth_field(
    rng: np.random.Generator, shape: Sequence[int], sigma_px: Sequence[float]
) -> np.ndarray:
    """Stationary Gaussian random field with zero mean and unit variance.

    White noise drawn with a margin of three sigmas, filtered, cropped and divided by
    the filter's theoretical gain, so a small array is a fair sample of the same field
    as a big one (no wrap-around, no edge effects).

    Parameters
    ----------
    rng
        Random generator.
    shape
        Output shape.
    sigma_px
        Correlation scale per axis in pixels (Gaussian filter sigma of white noise).

    Returns
    -------
    ndarray float32 of ``shape``.
    """
    pads = [int(np.ceil(3.0 * s)) for s in sigma_px]
    noise = rng.standard_normal(tuple(n + 2 * m for n, m in zip(shape, pads)), dtype=np.float32)
    field = ndi.gaussian_filter(noise, sigma=tuple(sigma_px), mode="reflect")
    field = field[tuple(slice(m, m + n) for n, m in zip(shape, pads))]
    return field / np.float32(np.sqrt(np.prod([_kernel_energy(s) for s in sigma_px])))


def coarse_field(
    rng: np.random.Generator, shape: Sequence[int], step_px: Sequence[float]
) -> np.ndarray:
    """Smooth field (about unit variance) drawn on a coarse grid, interpolated to ``shape``.

    Cheaper than :func:`smooth_field` for big volumes with long correlation scales: the
    field is drawn with one grid node every ``step_px`` pixels (rounded) per axis, then
    upsampled by repetition and a box filter of the same width (linear interpolation).
    """
    steps = [max(1, int(round(s))) for s in step_px]
    coarse = tuple(-(-n // f) + 1 for n, f in zip(shape, steps))
    field = smooth_field(rng, coarse, (1.0,) * len(coarse))
    for axis, f in enumerate(steps):
        if f > 1:
            field = ndi.uniform_filter1d(np.repeat(field, f, axis=axis), f, axis=axis)
    return field[tuple(slice(0, n) for n in shape)]


def speckle(
    rng: np.random.Generator, shape: Sequence[int], grain_px: Sequence[float]
) -> np.ndarray:
    """Multiplicative speckle with mean 1, spatially correlated over ``grain_px``.

    Fully developed speckle (exponential intensity) averaged over a Gaussian grain:
    the result is Gamma-like with a contrast (std / mean) that falls as the grain grows.

    Parameters
    ----------
    grain_px
        Gaussian sigma of the grain in pixels per axis (0 = independent).
    """
    intensity = rng.standard_exponential(tuple(shape), dtype=np.float32)
    return ndi.gaussian_filter(intensity, sigma=tuple(grain_px), truncate=3.0)
