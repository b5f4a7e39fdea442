"""Zero-training OCT skin-layer segmentation: skin surface and DEJ as minimum-cost paths.

The method, per B-scan (vectorised over a batch of B-scans):

1. **Surface.** The edge cost is the weakest signal over ``surface_window_um`` below a
   row minus the signal just above it: high only where lasting tissue signal starts, so
   thin bright lines (a glass window) and faint layers (coupling gel) above the skin do
   not catch the path. A minimum-cost path across the columns, with a maximum slope and
   a cost per pixel moved, follows that edge; each column is then refined to sub-pixel
   depth where the signal crosses ``surface_level`` of the way from the dark level above
   to the entry peak below.
2. **DEJ.** The image is resampled relative to the surface (row ``k`` lies ``k`` pixels
   under it). The DEJ is where the darker epidermis meets the brighter upper dermis: the
   cost is minus (mean over a window below minus mean over a window twice as long above),
   within ``[min_epidermis_um, max_epidermis_um]`` under the surface, the upper window
   being ``dej_window`` × the epidermal thickness (re-estimated from the B-scan in a few
   rounds). Two passes: a stiff path gives the B-scan's baseline DEJ, parallel to the
   surface; a supple path may then dip below that baseline (rete ridges) where the
   evidence beats ``rete_threshold`` (in units of the cost's standard deviation), never
   rise above it. Optionally the DEJ cost is averaged over neighbouring B-scans. Each
   column's row is refined to the vertex of a parabola through its evidence and its
   neighbours', and the DEJ is smoothed across columns at the speckle scale (as the
   surface is), which takes the pixel steps out of the path.

Labels follow :mod:`skinseg.measure.boundaries`: row ``r`` is below a boundary at depth
``d`` when ``r + 0.5 >= d``; air 0, epidermis 4, dermis 6 (:data:`OCT_CLASSES`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.progress import ProgressGenerator, run
from skinseg.segment._input import checked_pixel_sizes, oct_volume
from skinseg.segment._paths import flatten_under, level_crossing, min_cost_paths, window_means

__all__ = ["ClassicalParams", "ClassicalResult", "iter_segment_classical", "segment_classical"]

_EPIDERMIS = OCT_CLASSES.value_of("epidermis")
_DERMIS = OCT_CLASSES.value_of("dermis")

# Pixel-scale settings (speckle grain, not anatomy), and path stiffness in units of the
# cost's standard deviation per pixel moved.
_SURFACE_SIGMA_PX = (1.0, 2.0)
_DEJ_LATERAL_SIGMA_PX = 2.0
_SURFACE_PENALTY = 0.2
_RETE_PENALTY = 0.02
_OUTSIDE_COST = 10.0
_WINDOW_ROUNDS = 3
_MIN_DEPTH_PX = 16


@dataclass(frozen=True)
class ClassicalParams:
    """Settings of :func:`segment_classical`; lengths in µm, slopes in µm per µm.

    Attributes
    ----------
    surface_window_um
        Depth of tissue signal the surface edge looks for below itself (a quarter of it
        is compared above).
    surface_level
        Where the surface sits in the rise from the dark level above to the entry peak
        (0.5: half way, where people see the edge in a log-scaled B-scan).
    surface_max_slope
        Steepest surface allowed between neighbouring A-scans.
    min_epidermis_um, max_epidermis_um
        Range of depths below the surface searched for the DEJ.
    epidermis_um
        First guess of the epidermal thickness; refined from the image.
    dej_window
        Length of the dark epidermis window above the DEJ as a fraction of the epidermal
        thickness (half of it is compared below the DEJ).
    dej_max_slope
        Steepest DEJ change (relative to the surface) between neighbouring A-scans.
    rete_threshold
        Evidence (cost standard deviations per A-scan) needed for the DEJ to dip below
        the B-scan's baseline; larger keeps the DEJ closer to the baseline.
    baseline_stiffness
        Cost (standard deviations) per pixel the baseline DEJ moves relative to the
        surface between A-scans; lower it (e.g. 0.5) for wide B-scans whose epidermal
        thickness changes slowly across the image.
    bscan_sigma
        Gaussian sigma, in B-scans, over which the DEJ cost of a tomogram is averaged
        with its neighbours; 0 treats every B-scan on its own.
    """

    surface_window_um: float = 60.0
    surface_level: float = 0.5
    surface_max_slope: float = 1.0
    min_epidermis_um: float = 20.0
    max_epidermis_um: float = 200.0
    epidermis_um: float = 70.0
    dej_window: float = 0.73
    dej_max_slope: float = 1.5
    rete_threshold: float = 0.5
    baseline_stiffness: float = 5.0
    bscan_sigma: float = 0.0

    def __post_init__(self) -> None:
        positive = ("surface_window_um", "min_epidermis_um", "max_epidermis_um",
                    "epidermis_um", "dej_window", "surface_max_slope", "dej_max_slope")
        bad = [n for n in positive if not getattr(self, n) > 0]
        negative = min(self.rete_threshold, self.baseline_stiffness, self.bscan_sigma) < 0
        if bad or negative or not 0 < self.surface_level < 1:
            raise SkinsegInputError(
                f"classical segmentation: invalid settings {self}; lengths and slopes must be "
                "> 0, surface_level in (0, 1), rete_threshold, baseline_stiffness and "
                "bscan_sigma >= 0."
            )
        if self.max_epidermis_um <= self.min_epidermis_um:
            raise SkinsegInputError(
                f"classical segmentation: max_epidermis_um ({self.max_epidermis_um}) must exceed "
                f"min_epidermis_um ({self.min_epidermis_um})."
            )


@dataclass(frozen=True)
class ClassicalResult:
    """Output of the classical segmentation.

    Attributes
    ----------
    labels
        uint8, the image's spatial shape: 0 air, 4 epidermis, 6 dermis.
    surface, dej
        float32 sub-pixel depths (pixels), ``(n_bscans, width)`` or ``(width,)``.
    pixel_size_um
        µm per pixel of each spatial axis, as used.
    """

    labels: np.ndarray
    surface: np.ndarray
    dej: np.ndarray
    pixel_size_um: tuple[float, ...]

    @property
    def thickness_um(self) -> np.ndarray:
        """Epidermal thickness (DEJ − surface) along the axial pixel size, in µm."""
        return (self.dej - self.surface) * np.float32(self.pixel_size_um[-2])


def segment_classical(
    image: Any,
    *,
    pixel_size_um: float | tuple[float, ...] | None = None,
    params: ClassicalParams | None = None,
    batch_size: int = 16,
) -> ClassicalResult:
    """Segment an OCT B-scan or tomogram into air / epidermis / dermis without training.

    Parameters
    ----------
    image
        ``(depth, width)`` B-scan or ``(n_bscans, depth, width)`` tomogram (numpy,
        memory map, dask or zarr; uint8/uint16/float), or an :class:`ImageData`.
    pixel_size_um
        µm per pixel: one number, or one per spatial axis. Taken from an
        :class:`ImageData` when not given; otherwise 1.0 with a warning.
    params
        :class:`ClassicalParams`; defaults suit skin OCT of about 2–6 µm axial pixels.
    batch_size
        B-scans processed together (memory ~ batch × depth × width × 40 bytes).

    Returns
    -------
    ClassicalResult

    Raises
    ------
    SkinsegInputError
        For 1-D/4-D/RGB input, NaN or infinite values, a constant image, or an image
        too small to hold a skin surface.
    """
    steps = iter_segment_classical(
        image, pixel_size_um=pixel_size_um, params=params, batch_size=batch_size
    )
    return run(steps)


def iter_segment_classical(
    image: Any,
    *,
    pixel_size_um: float | tuple[float, ...] | None = None,
    params: ClassicalParams | None = None,
    batch_size: int = 16,
) -> ProgressGenerator[ClassicalResult]:
    """:func:`segment_classical` as a generator of progress for GUIs and progress bars.

    Yields ``(done, total, message)`` with ``done`` B-scans of ``total`` finished, first
    ``(0, total, ...)``; returns the :class:`ClassicalResult` (``StopIteration.value``).
    Closing the generator stops the work after the current batch.
    """
    params = params or ClassicalParams()
    volume, squeeze, given, source = oct_volume(image, pixel_size_um, min_depth=_MIN_DEPTH_PX)
    sizes = _pixel_sizes(given, len(volume.shape) - squeeze, source)
    if batch_size < 1:
        raise SkinsegInputError(f"{source}: batch_size must be >= 1, got {batch_size}")
    n_bscans, depth, width = volume.shape
    low, high = _intensity_range(volume, source)
    labels = np.zeros((n_bscans, depth, width), dtype=np.uint8)
    surface = np.empty((n_bscans, width), dtype=np.float32)
    dej = np.empty((n_bscans, width), dtype=np.float32)
    halo = math.ceil(3 * params.bscan_sigma) if n_bscans > 1 else 0
    yield 0, n_bscans, f"{source}: classical segmentation of {n_bscans} B-scan(s)"
    for start in range(0, n_bscans, batch_size):
        stop = min(start + batch_size, n_bscans)
        first, last = max(start - halo, 0), min(stop + halo, n_bscans)
        chunk = _normalised(volume[first:last], low, high, source)
        found_surface, found_dej = _boundaries(chunk, sizes[-2], sizes[-1], params)
        keep = slice(start - first, stop - first)
        surface[start:stop] = found_surface[keep]
        dej[start:stop] = found_dej[keep]
        labels[start:stop] = _labels(surface[start:stop], dej[start:stop], depth)
        yield stop, n_bscans, f"segmented B-scan {stop} of {n_bscans}"
    if squeeze:
        labels, surface, dej = labels[0], surface[0], dej[0]
    return ClassicalResult(labels, surface, dej, sizes[-labels.ndim :])


def _pixel_sizes(value: Any, ndim: int, source: str) -> tuple[float, ...]:
    """Pixel size per spatial axis as a tuple of ``ndim`` positive floats."""
    if value is None:
        warnings.warn(
            f"{source}: pixel size unknown; using 1.0 µm per pixel, so the µm settings of "
            "the classical segmentation act as pixels. Pass pixel_size_um.",
            stacklevel=4,
        )
        value = 1.0
    return checked_pixel_sizes(value, ndim, source)


def _intensity_range(volume: Any, source: str) -> tuple[float, float]:
    """Robust display range (1st and 99.5th percentile) from up to 16 B-scans."""
    picks = np.unique(np.linspace(0, volume.shape[0] - 1, min(volume.shape[0], 16)).astype(int))
    sample = np.stack([_finite(np.asarray(volume[i], dtype=np.float32), source) for i in picks])
    low, high = np.percentile(sample, [1.0, 99.5])
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    if high <= low:
        raise SkinsegInputError(
            f"{source}: the image is constant ({low:g}); there is no skin to segment. "
            "Check that the right channel or file was opened."
        )
    return float(low), float(high)


def _finite(array: np.ndarray, source: str) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise SkinsegInputError(
            f"{source}: the image holds NaN or infinite values; replace them (e.g. by 0) "
            "before segmenting."
        )
    return array


def _normalised(chunk: Any, low: float, high: float, source: str) -> np.ndarray:
    """B-scans as float32 scaled so the display range maps to [0, 1] (clipped)."""
    data = _finite(np.asarray(chunk, dtype=np.float32), source)
    return np.clip((data - low) / (high - low), 0.0, 1.0)


def _max_step(slope: float, axial_um: float, lateral_um: float) -> int:
    """Largest row change per column for a physical slope."""
    return max(1, math.ceil(slope * lateral_um / axial_um - 1e-6))


def _standardised(cost: np.ndarray, band: slice) -> np.ndarray:
    """Cost divided by its standard deviation within ``band`` rows, per B-scan."""
    spread = cost[:, band].std(axis=(1, 2), keepdims=True)
    return cost / np.maximum(spread, 1e-6)


def _boundaries(
    chunk: np.ndarray, axial_um: float, lateral_um: float, p: ClassicalParams
) -> tuple[np.ndarray, np.ndarray]:
    """Surface and DEJ depth maps ``(n, width)`` of normalised B-scans ``(n, depth, width)``."""
    smooth = ndi.gaussian_filter(chunk, (0, *_SURFACE_SIGMA_PX))
    surface = _surface(smooth, axial_um, lateral_um, p)
    return surface, _dej(chunk, surface, axial_um, lateral_um, p)


def _surface_windows(p: ClassicalParams, axial_um: float) -> tuple[int, int]:
    """Rows compared above and below a candidate surface."""
    below = max(4, round(p.surface_window_um / axial_um))
    return max(2, below // 4), below


def _surface(
    smooth: np.ndarray, axial_um: float, lateral_um: float, p: ClassicalParams
) -> np.ndarray:
    """Sub-pixel skin surface from smoothed B-scans."""
    above, below = _surface_windows(p, axial_um)
    # the weakest signal over the window below: high only where tissue signal lasts,
    # not at a thin bright line (glass) or a faint layer (gel) over the skin
    lasting = ndi.minimum_filter1d(smooth, below, axis=1, origin=-(below // 2), mode="nearest")
    edge = _standardised(lasting - window_means(lasting, above, 1)[0], slice(None))
    step = _max_step(p.surface_max_slope, axial_um, lateral_um)
    rows = min_cost_paths(-edge, max_step=step, penalty=_SURFACE_PENALTY)
    depth = level_crossing(smooth, rows, 2 * above, below // 2, p.surface_level)
    return ndi.gaussian_filter1d(depth, _SURFACE_SIGMA_PX[1], axis=-1).astype(np.float32)


def _dej(
    chunk: np.ndarray, surface: np.ndarray, axial_um: float, lateral_um: float, p: ClassicalParams
) -> np.ndarray:
    """Sub-pixel DEJ under ``surface`` by the two-pass (baseline, rete ridges) search."""
    k_min = max(1, round(p.min_epidermis_um / axial_um))
    k_max = max(k_min + 2, round(p.max_epidermis_um / axial_um))
    n = chunk.shape[0]
    smooth = ndi.gaussian_filter1d(chunk, _DEJ_LATERAL_SIGMA_PX, axis=-1)
    flat = flatten_under(smooth, surface, k_max + k_max // 2 + 2)
    k = np.arange(k_max + 1)[None, :, None]
    outside = np.where(surface[:, None, :] + k - 0.5 >= chunk.shape[1], _OUTSIDE_COST, 0.0)
    # the DEJ lies below the bright entry band: not before its peak
    entry = flat[:, : _surface_windows(p, axial_um)[1] + 1].argmax(axis=1)[:, None, :]
    forbidden = (k < k_min) | (k <= np.minimum(entry, k_max - 1))
    step = _max_step(p.dej_max_slope, axial_um, lateral_um)
    thickness = np.full(n, p.epidermis_um / axial_um)
    for _ in range(_WINDOW_ROUNDS):
        above = np.clip(np.round(p.dej_window * thickness), 2, k_max).astype(int)
        mean_above, mean_below = window_means(flat, above, np.maximum(above // 2, 1))
        edge = (mean_below - mean_above)[:, : k_max + 1]
        if p.bscan_sigma > 0 and n > 1:
            edge = ndi.gaussian_filter1d(edge, p.bscan_sigma, axis=0, mode="nearest")
        evidence = (outside - _standardised(edge, slice(k_min, k_max + 1))).astype(np.float32)
        cost = np.where(forbidden, np.inf, evidence).astype(np.float32)
        baseline = min_cost_paths(cost, max_step=step, penalty=p.baseline_stiffness)
        thickness = np.median(baseline, axis=-1)
    baseline = baseline[:, None, :]
    cost = np.where(k < baseline, np.inf, cost + np.float32(p.rete_threshold) * (k > baseline))
    found = min_cost_paths(cost, max_step=step, penalty=_RETE_PENALTY)
    found = ndi.gaussian_filter1d(_vertex(evidence, found), _DEJ_LATERAL_SIGMA_PX, axis=-1)
    return (surface + found - 0.5).astype(np.float32)


def _vertex(cost: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sub-pixel rows: the vertex of the parabola through the cost at ``rows`` ± 1."""
    k = np.clip(rows, 1, cost.shape[1] - 2)[:, None, :]
    before, at, after = (np.take_along_axis(cost, k + d, axis=1)[:, 0] for d in (-1, 0, 1))
    curvature = before - 2 * at + after
    shift = np.where(curvature > 0, 0.5 * (before - after) / np.maximum(curvature, 1e-6), 0.0)
    return np.where(k[:, 0] == rows, rows + np.clip(shift, -0.5, 0.5), rows)


def _labels(surface: np.ndarray, dej: np.ndarray, depth: int) -> np.ndarray:
    """Air / epidermis / dermis labels ``(n, depth, width)`` from two depth maps."""
    centres = np.arange(depth, dtype=np.float32)[:, None] + 0.5
    labels = np.where(centres >= surface[:, None, :], _EPIDERMIS, 0)
    return np.where(centres >= dej[:, None, :], _DERMIS, labels).astype(np.uint8)
