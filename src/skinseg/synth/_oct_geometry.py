"""Layer boundaries of the OCT skin phantom: en-face depth maps in pixels.

Every map is float32 ``(n_bscans, width)``, a sub-pixel depth following the convention of
:mod:`skinseg.measure.boundaries` (row ``r`` lies below a boundary at ``d`` when
``r + 0.5 >= d``). Maps are ordered top-down, so labels built from them never go back up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from skinseg.errors import SkinsegInputError
from skinseg.synth._noise import smooth_field


@dataclass(frozen=True)
class OCTAnatomy:
    """Geometry of the phantom skin, in µm (depths along the axial pixel size).

    Attributes
    ----------
    surface_um
        Mean depth of the skin surface below the top of the image.
    epidermis_um
        Mean epidermal thickness (surface to DEJ centre) away from rete ridges.
    epidermis_variation
        Relative standard deviation of the smooth epidermal thickness changes.
    stratum_corneum_um
        Thickness of the stratum corneum (the bright entry band).
    dej_band_um
        Thickness of the DEJ band (class 5), centred on the true DEJ depth.
    rete_depth_um
        Typical depth of the rete-ridge dips of the DEJ.
    rete_spacing_um
        Mean distance between rete ridges met along a B-scan.
    rete_width_um
        Typical width of a rete-ridge dip.
    tilt
        Surface slope (µm of depth per µm) along the B-scan axis and along the width.
    curvature_um
        How much deeper the surface lies at the lateral edges than at the centre.
    undulation_um
        Standard deviation of the smooth random surface relief.
    gel_um
        Mean thickness of the coupling gel (when present).
    glass_um
        Thickness of the glass window (when present).
    hairs_per_mm
        About how many hairs lie above the skin along 1 mm of B-scan (none under glass).
    follicles_per_mm2, follicle_radius_um, follicle_depth_um
        Hair follicles / glands: dark cones in the upper dermis, their number per mm²
        en face, radius at the base and depth below the DEJ.
    """

    surface_um: float = 120.0
    epidermis_um: float = 72.0
    epidermis_variation: float = 0.04
    stratum_corneum_um: float = 12.5
    dej_band_um: float = 5.0
    rete_depth_um: float = 25.0
    rete_spacing_um: float = 300.0
    rete_width_um: float = 100.0
    tilt: tuple[float, float] = (0.0, 0.004)
    curvature_um: float = 25.0
    undulation_um: float = 6.0
    gel_um: float = 30.0
    glass_um: float = 60.0
    hairs_per_mm: float = 0.3
    follicles_per_mm2: float = 5.0
    follicle_radius_um: float = 250.0
    follicle_depth_um: float = 200.0

    def __post_init__(self) -> None:
        positive = (
            "epidermis_um", "stratum_corneum_um", "dej_band_um", "rete_spacing_um",
            "rete_width_um", "gel_um", "glass_um", "follicle_radius_um", "follicle_depth_um",
        )
        non_negative = (
            "surface_um", "epidermis_variation", "rete_depth_um", "undulation_um",
            "hairs_per_mm", "follicles_per_mm2",
        )
        value = {n: getattr(self, n) for n in positive + non_negative}
        bad = [f"{n}={value[n]} must be > 0" for n in positive if not value[n] > 0]
        bad += [f"{n}={value[n]} must be >= 0" for n in non_negative if not value[n] >= 0]
        if bad:
            raise SkinsegInputError(f"OCT phantom anatomy: {'; '.join(bad)}")


@dataclass(frozen=True)
class Boundaries:
    """Boundary depth maps (pixels) of one phantom; ``None`` for absent layers."""

    glass_top: np.ndarray | None
    glass_bottom: np.ndarray | None
    gel_top: np.ndarray | None
    surface: np.ndarray
    sc_bottom: np.ndarray
    dej: np.ndarray
    dej_half: float
    follicle_reach: np.ndarray
    follicle_depth_um: np.ndarray


def _en_face_grid(n_b: int, width: int, pixel_size_um: tuple[float, float, float]):
    """Centred en-face coordinates (µm), each ``(n_b, width)``, and the half width."""
    y = (np.arange(n_b, dtype=np.float32) - (n_b - 1) / 2) * pixel_size_um[0]
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) * pixel_size_um[2]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    half = max((width - 1) / 2 * pixel_size_um[2], 1e-6)
    return yy, xx, half


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma_um: float, p) -> np.ndarray:
    """Smooth unit-variance en-face field with correlation ``sigma_um``."""
    return smooth_field(rng, shape, (sigma_um / p[0], sigma_um / p[2]))


def rete_dips(
    rng: np.random.Generator, shape: tuple[int, int], p: tuple[float, float, float], a: OCTAnatomy
) -> np.ndarray:
    """Rete-ridge dips of the DEJ (µm, >= 0): a 2-D network of narrow downward ridges.

    The ridges follow the zero lines of a smooth random field whose scale is set so a
    straight line meets on average one ridge per ``rete_spacing_um`` (Rice's formula);
    a dip is ``rete_width_um`` wide and its depth varies smoothly along the ridge
    (log-normally, capped at 3.6 × ``rete_depth_um``, 90 µm for the default: the deepest
    dips in the face-dev masks are 38 rows, about 90 µm).
    """
    sigma = a.rete_spacing_um / (np.pi * np.sqrt(2.0))
    f = _field(rng, shape, sigma, p)
    slope = 1.0 / (np.sqrt(2.0) * sigma)  # typical |gradient| of f per µm
    ridge = np.clip(1.0 - np.abs(f) / (slope * a.rete_width_um / 2), 0.0, 1.0) ** 2
    depth = a.rete_depth_um * np.minimum(np.exp(_field(rng, shape, 2 * sigma, p) - 0.5), 3.6)
    return (ridge * depth).astype(np.float32)


def follicles(
    rng: np.random.Generator, shape: tuple[int, int], p: tuple[float, float, float], a: OCTAnatomy
) -> tuple[np.ndarray, np.ndarray]:
    """Dark cones in the dermis, as en-face maps: reach and depth of the nearest cone.

    Cone axes are scattered at random (Poisson) over the en-face plane, padded so cones
    centred outside the image still reach into it. ``reach`` is the distance to the
    nearest axis divided by that cone's base radius (< 1 inside the base), ``depth`` its
    depth below the DEJ in µm (0 where there are no cones).
    """
    pad = [int(np.ceil(1.5 * a.follicle_radius_um / p[k])) for k in (0, 2)]
    grid = (shape[0] + 2 * pad[0], shape[1] + 2 * pad[1])
    area_mm2 = grid[0] * p[0] * grid[1] * p[2] / 1e6
    count = rng.poisson(a.follicles_per_mm2 * area_mm2)
    if count == 0:
        return np.full(shape, np.inf, np.float32), np.zeros(shape, np.float32)
    seeds = np.ones(grid, dtype=bool)
    centres = rng.integers(0, grid[0], count), rng.integers(0, grid[1], count)
    seeds[centres] = False
    scale = np.ones(grid, dtype=np.float32)
    scale[centres] = rng.uniform(0.6, 1.4, count)
    distance, (ib, iw) = ndi.distance_transform_edt(
        seeds, sampling=(p[0], p[2]), return_indices=True
    )
    crop = (slice(pad[0], pad[0] + shape[0]), slice(pad[1], pad[1] + shape[1]))
    nearest = scale[ib[crop], iw[crop]]
    reach = distance[crop] / (a.follicle_radius_um * nearest)
    return reach.astype(np.float32), (a.follicle_depth_um * nearest).astype(np.float32)


def boundaries(
    rng: np.random.Generator,
    shape: tuple[int, int],
    p: tuple[float, float, float],
    a: OCTAnatomy,
    *,
    glass: bool,
    gel: bool,
) -> Boundaries:
    """Draw the layer boundaries of one phantom.

    Parameters
    ----------
    shape
        En-face shape ``(n_bscans, width)``.
    p
        Pixel size (µm) along ``(n_bscans, depth, width)``.
    """
    yy, xx, half = _en_face_grid(*shape, p)
    to_px = 1.0 / p[1]
    shape_um = a.tilt[0] * yy + a.tilt[1] * xx
    bowl = a.curvature_um * (xx**2 + yy**2) / half**2
    broad, fine = _field(rng, shape, 150.0, p), _field(rng, shape, 20.0, p)
    relief = a.undulation_um * (broad + 0.25 * fine)
    surface = a.surface_um + shape_um + bowl + relief
    glass_top = glass_bottom = gel_top = None
    gel_thickness = np.maximum(a.gel_um * (1.0 + 0.3 * _field(rng, shape, 200.0, p)), 2.0 * p[1])
    if glass:
        # The window presses the skin flat: only tilt and a little bowl remain under it.
        glass_bottom = a.surface_um + shape_um + 0.2 * bowl - (a.gel_um if gel else 0.0)
        surface = glass_bottom + (gel_thickness + 0.3 * np.maximum(relief, 0) if gel else 0.0)
        glass_top = glass_bottom - a.glass_um
        gel_top = glass_bottom if gel else None
    elif gel:
        gel_top = surface - gel_thickness
    sc_bottom = surface + np.maximum(
        a.stratum_corneum_um * (1.0 + 0.15 * _field(rng, shape, 100.0, p)), p[1]
    )
    epidermis = a.epidermis_um * (1.0 + a.epidermis_variation * _field(rng, shape, 300.0, p))
    dej = surface + epidermis + rete_dips(rng, shape, p, a)
    dej_half = max(a.dej_band_um * to_px, 1.0) / 2
    dej = np.maximum(dej * to_px, sc_bottom * to_px + dej_half + 1.0)
    reach, cone_depth = follicles(rng, shape, p, a)
    glass_top, glass_bottom, gel_top = (
        None if m is None else (m * to_px).astype(np.float32)
        for m in (glass_top, glass_bottom, gel_top)
    )
    return Boundaries(
        glass_top=glass_top,
        glass_bottom=glass_bottom,
        gel_top=gel_top,
        surface=(surface * to_px).astype(np.float32),
        sc_bottom=(sc_bottom * to_px).astype(np.float32),
        dej=dej.astype(np.float32),
        dej_half=float(dej_half),
        follicle_reach=reach,
        follicle_depth_um=cone_depth,
    )
