"""Epidermal thickness and DEJ depth per A-scan from OCT labels, as µm maps with statistics.

Per A-scan: skin surface (top of the stratum corneum, else of any skin class), DEJ (centre
of the DEJ band, else top of the dermis), epidermal thickness = DEJ − surface, and stratum
corneum thickness where labelled (:mod:`skinseg.measure.boundaries` for the depth
convention). Depths become µm with the axial pixel size ÷ the refractive index. An A-scan
without both boundaries is NaN and counts as not covered.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import UNKNOWN_PIXEL_SIZE_WARNING, ImageData
from skinseg.measure import boundaries
from skinseg.measure.dej_shape import (
    CONTOUR_SIGMA_PX,
    ROUGHNESS_SIGMA_UM,
    dej_roughness,
    smooth_map,
    undulation_index,
)
from skinseg.measure.summary import STAT_NAMES, describe, table_rows

SLOPE_SIGMA_PX = 2.0
"""Gaussian σ (map pixels, both en-face axes) smoothing the surface slope used for the
normal correction; it averages out the pixel steps of a surface found from labels."""

CHUNK_BSCANS = 8
"""B-scans read and processed at a time (caps memory on large or lazy volumes)."""

_MAX_CLASS = max(OCT_CLASSES.values)


@dataclass(eq=False)
class EpidermisMeasurement:
    """Boundaries in pixels plus everything derived from them in µm.

    Build it with :func:`measure_epidermis`. The pixel maps are the state; the µm maps,
    summary and per-B-scan table are recomputed from them by :meth:`refresh` (and by
    :meth:`update` after an edit of the labels).

    Attributes
    ----------
    surface_px, dej_px, sc_bottom_px
        ``(n_bscans, width)`` float32 depths in pixels (NaN = not found).
    pixel_size_um
        ``(bscan spacing, axial, lateral)`` µm as given (axial before the refractive index).
    refractive_index
        Axial pixel sizes are divided by it (1.0: already physical; ~1.4: optical path).
    normal_correction
        Measure thickness along the local surface normal instead of straight down.
    slope_sigma_px, contour_sigma_px, roughness_sigma_um
        Smoothing scales, see :data:`SLOPE_SIGMA_PX` and :mod:`skinseg.measure.dej_shape`.
    source
        Name of the labels (file or layer), for messages and the summary.
    surface_depth_um, dej_depth_um, thickness_um, sc_thickness_um
        ``(n_bscans, width)`` float32 maps in µm (depths from the top of the A-scan).
    summary
        Flat dict: ``n``, ``n_ascans``, ``coverage`` and ``thickness_<stat>_um`` for
        :data:`~skinseg.measure.summary.STAT_NAMES`, stratum corneum and DEJ figures,
        and the settings.
    per_bscan
        One dict per B-scan with its thickness statistics and DEJ shape.
    """

    surface_px: np.ndarray
    dej_px: np.ndarray
    sc_bottom_px: np.ndarray
    pixel_size_um: tuple[float, float, float]
    refractive_index: float = 1.0
    normal_correction: bool = False
    slope_sigma_px: float = SLOPE_SIGMA_PX
    contour_sigma_px: float = CONTOUR_SIGMA_PX
    roughness_sigma_um: float = ROUGHNESS_SIGMA_UM
    source: str = "labels"
    surface_depth_um: np.ndarray = field(init=False, repr=False)
    dej_depth_um: np.ndarray = field(init=False, repr=False)
    thickness_um: np.ndarray = field(init=False, repr=False)
    sc_thickness_um: np.ndarray = field(init=False, repr=False)
    summary: dict[str, Any] = field(init=False, repr=False)
    per_bscan: list[dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pixel_size_um = _check_pixel_size(self.pixel_size_um, 3, self.source)
        _check_refractive_index(self.refractive_index, self.source)
        self.refresh()

    @property
    def axial_um(self) -> float:
        """Physical µm per depth pixel: axial pixel size ÷ refractive index."""
        return self.pixel_size_um[1] / self.refractive_index

    @property
    def map_pixel_size_um(self) -> tuple[float, float]:
        """µm per pixel of the en-face maps: (B-scan spacing, lateral)."""
        return (self.pixel_size_um[0], self.pixel_size_um[2])

    def refresh(self) -> None:
        """Recompute the µm maps, summary and per-B-scan table from the pixel maps."""
        az = self.axial_um
        self.surface_depth_um = (self.surface_px * az).astype(np.float32)
        self.dej_depth_um = (self.dej_px * az).astype(np.float32)
        thickness = (self.dej_px - self.surface_px) * az
        sc = (self.sc_bottom_px - self.surface_px) * az
        if self.normal_correction:
            cos = self._cos_tilt()
            thickness, sc = thickness * cos, sc * cos
        self.thickness_um = thickness.astype(np.float32)
        self.sc_thickness_um = sc.astype(np.float32)
        self._tabulate()

    def update(self, labels: Any, bscans: Iterable[int] | None = None) -> None:
        """Re-measure only the B-scans ``bscans`` of edited ``labels``, then :meth:`refresh`.

        The touched B-scans are measured from the labels even where the first measurement
        used probabilities (the edit is the truth now); the others keep their boundaries.

        Parameters
        ----------
        labels
            The whole labels array (same shape as measured), e.g. a napari labels layer's data.
        bscans
            Indices of the touched B-scans; ``None`` re-measures all.
        """
        labels = _as_volume(_check_labels(labels, self.source))
        n_bscans = self.surface_px.shape[0]
        if labels.shape[0] != n_bscans or labels.shape[2] != self.surface_px.shape[1]:
            raise SkinsegInputError(
                f"{self.source}: labels of shape {tuple(labels.shape)} do not match the "
                f"measured maps {self.surface_px.shape}; measure them anew instead"
            )
        rows = np.arange(n_bscans) if bscans is None else np.unique(np.fromiter(bscans, dtype=int))
        if rows.size and (rows.min() < 0 or rows.max() >= n_bscans):
            raise SkinsegInputError(
                f"{self.source}: B-scan indices {rows.tolist()} outside 0..{n_bscans - 1}"
            )
        for i in rows:
            found = _boundary_rows(labels, None, int(i), int(i) + 1, self.source)
            self.surface_px[i], self.dej_px[i], self.sc_bottom_px[i] = (b[0] for b in found)
        self.refresh()

    def _cos_tilt(self) -> np.ndarray:
        """cos of the angle between the local surface normal and the A-scan."""
        surface = self.surface_px.astype(np.float64)
        slopes = []
        for axis, size_um in ((0, self.pixel_size_um[0]), (1, self.pixel_size_um[2])):
            if surface.shape[axis] < 2:
                continue
            grad = smooth_map(np.gradient(surface, axis=axis), self.slope_sigma_px)
            # no measured neighbour within reach: no correction at that A-scan
            slopes.append(np.nan_to_num(grad, nan=0.0) * self.axial_um / size_um)
        return 1.0 / np.sqrt(1.0 + sum(s**2 for s in slopes))

    def _tabulate(self) -> None:
        """Fill :attr:`summary` and :attr:`per_bscan` from the µm maps."""
        lateral = self.pixel_size_um[2]
        und_rows, und = undulation_index(self.dej_depth_um, lateral, self.contour_sigma_px)
        rough_rows, rough = dej_roughness(self.dej_depth_um, lateral, self.roughness_sigma_um)
        rows = describe(self.thickness_um, axis=1)
        sc_rows = describe(self.sc_thickness_um, axis=1)
        dej_rows = describe(self.dej_depth_um, axis=1)
        n_bscans, width = self.thickness_um.shape
        self.per_bscan = table_rows(
            {
                "bscan": np.arange(n_bscans),
                "n_ascans": np.full(n_bscans, width),
                "n": rows["n"],
                "coverage": rows["coverage"],
                **{f"thickness_{s}_um": rows[s] for s in STAT_NAMES},
                "sc_thickness_mean_um": sc_rows["mean"],
                "dej_depth_mean_um": dej_rows["mean"],
                "dej_undulation_index": und_rows,
                "dej_roughness_um": rough_rows,
            }
        )
        total = describe(self.thickness_um)
        sc_total = describe(self.sc_thickness_um)
        self.summary = {
            "source": self.source,
            "n_bscans": n_bscans,
            "n_ascans": n_bscans * width,
            "n": total["n"],
            "coverage": total["coverage"],
            **{f"thickness_{s}_um": total[s] for s in STAT_NAMES},
            "sc_thickness_mean_um": sc_total["mean"],
            "sc_coverage": sc_total["coverage"],
            "dej_depth_mean_um": describe(self.dej_depth_um)["mean"],
            "dej_undulation_index": und,
            "dej_roughness_um": rough,
            "refractive_index": float(self.refractive_index),
            "normal_correction": bool(self.normal_correction),
            "bscan_spacing_um": self.pixel_size_um[0],
            "axial_pixel_um": self.pixel_size_um[1],
            "lateral_pixel_um": self.pixel_size_um[2],
            "roughness_sigma_um": float(self.roughness_sigma_um),
            "contour_sigma_px": float(self.contour_sigma_px),
            "slope_sigma_px": float(self.slope_sigma_px),
        }


def measure_epidermis(
    labels: Any,
    pixel_size_um: Sequence[float] | None = None,
    *,
    probabilities: Any = None,
    refractive_index: float = 1.0,
    normal_correction: bool = False,
    slope_sigma_px: float = SLOPE_SIGMA_PX,
    contour_sigma_px: float = CONTOUR_SIGMA_PX,
    roughness_sigma_um: float = ROUGHNESS_SIGMA_UM,
    source: str | None = None,
) -> EpidermisMeasurement:
    """Measure epidermal thickness and DEJ shape from OCT labels.

    Parameters
    ----------
    labels
        Integer OCT labels ``(n_bscans, depth, width)`` or one B-scan ``(depth, width)``
        (numpy, memory-mapped, zarr or dask; read :data:`CHUNK_BSCANS` B-scans at a time),
        or an :class:`~skinseg.io.image_data.ImageData` holding them.
    pixel_size_um
        µm per pixel of each axis of ``labels``; ``None`` takes the ImageData's, or 1.0
        with a warning. A single B-scan's maps take the lateral size as B-scan spacing.
    probabilities
        Optional class probabilities ``(7, *labels.shape)``: boundaries are then found
        with sub-pixel precision from them instead of from the labels.
    refractive_index
        Axial pixel size is divided by it (1.0: already physical; ~1.4: optical path).
    normal_correction
        Thickness along the local surface normal (from the smoothed surface slope along
        both en-face axes) instead of straight down the A-scan.
    slope_sigma_px, contour_sigma_px, roughness_sigma_um
        Smoothing scales, see :data:`SLOPE_SIGMA_PX` and :mod:`skinseg.measure.dej_shape`.
    source
        Name of the labels (file or layer) for messages.

    Returns
    -------
    EpidermisMeasurement
        Maps are ``(n_bscans, width)`` (``(1, width)`` for one B-scan).

    Raises
    ------
    SkinsegInputError
        Labels not integer, not 2D/3D, holding values outside the OCT class table;
        pixel sizes or refractive index not positive; probabilities of the wrong shape.
    """
    if isinstance(labels, ImageData):
        source = source or labels.source
        pixel_size_um = labels.pixel_size_um if pixel_size_um is None else pixel_size_um
        labels = labels.data
    source = source or "labels"
    labels = _check_labels(labels, source)
    if pixel_size_um is None:
        warnings.warn(UNKNOWN_PIXEL_SIZE_WARNING.format(source=source), stacklevel=2)
        pixel_size_um = (1.0,) * labels.ndim
    sizes = _check_pixel_size(pixel_size_um, labels.ndim, source)
    if labels.ndim == 2:
        sizes = (sizes[1], *sizes)
    _check_refractive_index(refractive_index, source)
    volume = _as_volume(labels)
    probs = None if probabilities is None else _check_probabilities(probabilities, labels, source)
    n_bscans = volume.shape[0]
    found = [
        _boundary_rows(volume, probs, start, min(start + CHUNK_BSCANS, n_bscans), source)
        for start in range(0, n_bscans, CHUNK_BSCANS)
    ]
    surface, dej, sc_bottom = (np.concatenate([f[k] for f in found]) for k in range(3))
    return EpidermisMeasurement(
        surface, dej, sc_bottom, sizes,
        refractive_index=float(refractive_index),
        normal_correction=normal_correction,
        slope_sigma_px=slope_sigma_px,
        contour_sigma_px=contour_sigma_px,
        roughness_sigma_um=roughness_sigma_um,
        source=source,
    )  # fmt: skip


def _boundary_rows(
    labels: Any, probabilities: Any, start: int, stop: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface, DEJ and stratum-corneum bottom (pixels) of B-scans ``start:stop``."""
    if probabilities is not None:
        p = np.asarray(probabilities[:, start:stop])
        return (
            boundaries.surface_depth_from_probabilities(p),
            boundaries.dej_depth_from_probabilities(p),
            boundaries.stratum_corneum_bottom_from_probabilities(p),
        )
    block = np.asarray(labels[start:stop])
    signed = np.issubdtype(block.dtype, np.signedinteger)
    if block.size and (block.max() > _MAX_CLASS or (signed and block.min() < 0)):
        raise SkinsegInputError(
            f"{source}: B-scans {start}..{stop - 1} hold values outside the OCT class table "
            f"0..{_MAX_CLASS} ({', '.join(OCT_CLASSES.names)}); load OCT layer labels"
        )
    return (
        boundaries.surface_depth(block),
        boundaries.dej_depth(block),
        boundaries.stratum_corneum_bottom(block),
    )


def _as_volume(labels: Any) -> Any:
    """A single B-scan as a one-B-scan volume; volumes unchanged."""
    return np.asarray(labels)[None] if labels.ndim == 2 else labels


def _check_labels(labels: Any, source: str) -> Any:
    """Array-like labels with integer dtype and 2 or 3 dimensions, else SkinsegInputError."""
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    if len(labels.shape) not in (2, 3):
        raise SkinsegInputError(
            f"{source}: OCT labels must be a B-scan (depth, width) or a tomogram "
            f"(n_bscans, depth, width); got shape {tuple(labels.shape)}"
        )
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise SkinsegInputError(
            f"{source}: labels must hold integer class values, got dtype {labels.dtype}; "
            "pass a labels layer or label file, not an image or probabilities"
        )
    return labels


def _check_probabilities(probabilities: Any, labels: Any, source: str) -> Any:
    """Probabilities ``(n_classes, *labels.shape)``, returned as a volume view."""
    want = (len(OCT_CLASSES.values), *labels.shape)
    if tuple(probabilities.shape) != want:
        raise SkinsegInputError(
            f"{source}: class probabilities must have shape {want} (classes first), "
            f"got {tuple(probabilities.shape)}"
        )
    if not np.issubdtype(np.dtype(probabilities.dtype), np.floating):
        raise SkinsegInputError(
            f"{source}: class probabilities must be floats, got {probabilities.dtype}"
        )
    return np.asarray(probabilities)[:, None] if labels.ndim == 2 else probabilities


def _check_pixel_size(pixel_size_um: Sequence[float], ndim: int, source: str) -> tuple[float, ...]:
    sizes = tuple(float(p) for p in pixel_size_um)
    if len(sizes) != ndim or not all(np.isfinite(p) and p > 0 for p in sizes):
        raise SkinsegInputError(
            f"{source}: need {ndim} positive pixel sizes in µm (one per axis), got {pixel_size_um}"
        )
    return sizes


def _check_refractive_index(refractive_index: float, source: str) -> None:
    if not (np.isfinite(refractive_index) and refractive_index > 0):
        raise SkinsegInputError(
            f"{source}: refractive index must be a positive number (1.0 if the axial pixel "
            f"size is already physical, about 1.4 for skin), got {refractive_index}"
        )
