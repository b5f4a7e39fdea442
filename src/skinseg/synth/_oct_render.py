"""Intensity of the OCT skin phantom: reflectivity, attenuation, speckle, log display.

The image is rendered as linear OCT intensity relative to the noise floor (= 1):
layer reflectivity × Beer-Lambert attenuation (+ a multiple-scattering background),
blurred by the point-spread function, plus the noise floor, times correlated speckle;
then log-compressed to uint16 like a vendor's B-scan export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from skinseg.classes import OCT_CLASSES
from skinseg.synth._noise import coarse_field, smooth_field, speckle
from skinseg.synth._oct_geometry import Boundaries

_GEL = OCT_CLASSES.value_of("gel")
_SC = OCT_CLASSES.value_of("stratum corneum")
_EPIDERMIS = OCT_CLASSES.value_of("epidermis")
_DEJ = OCT_CLASSES.value_of("DEJ")
_ABSENT_DB = -200.0


@dataclass(frozen=True)
class OCTLook:
    """How the phantom looks. Levels are dB of OCT intensity above the noise floor.

    The defaults are tuned on the real face-dev B-scans (mean depth profile, histogram,
    speckle grain and contrast); see ``scripts/compare_phantom_real.py``.

    Attributes
    ----------
    stratum_corneum_db, epidermis_db, gel_db
        Reflectivity of those layers.
    papillary_db, reticular_db, papillary_um
        Dermal reflectivity just below the DEJ and deep down, and the depth (µm below
        the DEJ) over which it falls from one to the other.
    follicle_db
        Darkening inside hair follicles / glands (dark cones in the upper dermis).
    texture_db
        Amplitude of the mottled texture of the tissue, fading with depth.
    dej_transition_um
        Distance below the top of the DEJ band over which the reflectivity rises from the
        epidermal to the dermal level (small = sharp DEJ edge).
    attenuation_per_mm
        Attenuation coefficient µ: signal falls as ``exp(-2 µ z)`` below the surface.
    diffuse_db
        Multiple-scattering background, dB below the unattenuated signal.
    glass_db, gel_surface_db, hair_db
        Reflectivity of the glass interfaces, of the free (air-facing) top of the gel
        and of hairs.
    shadow_db
        Loss below the thickest part of a hair.
    streak_db, streak_um
        Vertical streaks in the noise floor near the top of the image (zero delay):
        their strength and the depth over which they fade (Gaussian fall-off).
    resolution_um
        Gaussian sigma of the point-spread function (axial, lateral); sets the speckle
        grain and the blur of the layers.
    display_floor_db, display_range_db
        Log display: ``display_floor_db`` maps to 0 and ``+ display_range_db`` to 65535.
    """

    stratum_corneum_db: float = 32.0
    epidermis_db: float = 23.3
    gel_db: float = 6.0
    papillary_db: float = 28.9
    reticular_db: float = 17.5
    papillary_um: float = 136.0
    follicle_db: float = 6.0
    texture_db: float = 3.5
    dej_transition_um: float = 8.0
    attenuation_per_mm: float = 4.4
    diffuse_db: float = 9.9
    glass_db: float = 40.0
    gel_surface_db: float = 25.0
    hair_db: float = 28.0
    shadow_db: float = 6.0
    streak_db: float = 8.0
    streak_um: float = 90.0
    resolution_um: tuple[float, float] = (2.2, 6.0)
    display_floor_db: float = -2.6
    display_range_db: float = 45.0


def _db_to_linear(db: np.ndarray | float) -> np.ndarray:
    return np.power(np.float32(10.0), np.asarray(db, dtype=np.float32) / np.float32(10.0))


def _dermis_db(below_dej_um: np.ndarray, b: Boundaries, p, look: OCTLook) -> np.ndarray:
    """Dermal reflectivity (dB): papillary → reticular fall-off and dark follicle cones,
    rising from the epidermal level across the DEJ band. Works in place on float32."""
    t = np.maximum(below_dej_um, np.float32(0.0))
    level = np.exp(t * np.float32(-1.0 / look.papillary_um))
    level *= np.float32(look.papillary_db - look.reticular_db)
    level += np.float32(look.reticular_db)
    span = t * (1.0 / np.maximum(b.follicle_depth_um, 1e-3))[:, None, :]
    inside = np.minimum(span, np.float32(1.0)) - b.follicle_reach[:, None, :]
    np.clip(inside * np.float32(1 / 0.3), 0.0, 1.0, out=inside)
    fade = np.clip((np.float32(1.2) - span) * np.float32(1 / 0.5), 0.0, 1.0, out=span)
    inside *= fade
    inside *= np.float32(look.follicle_db)
    level -= inside
    # Across the DEJ band the level rises from the epidermal one: the DEJ edge.
    rise = np.maximum(below_dej_um + np.float32(b.dej_half * p[1]), np.float32(0.0), out=t)
    rise *= np.float32(-1.0 / look.dej_transition_um)
    np.exp(rise, out=rise)
    level -= np.float32(look.epidermis_db)
    level *= np.float32(1.0) - rise
    level += np.float32(look.epidermis_db)
    return level


def _reflectivity_db(
    rng: np.random.Generator, labels: np.ndarray, b: Boundaries, p, look: OCTLook
) -> np.ndarray:
    """Reflectivity (dB) per voxel: layer levels, dermis rendered in depth, tissue texture."""
    lut = np.full(256, _ABSENT_DB, dtype=np.float32)
    lut[[_GEL, _SC, _EPIDERMIS]] = look.gel_db, look.stratum_corneum_db, look.epidermis_db
    level = lut[labels]
    # The entry reflection varies with the local surface angle: patchy along the surface.
    patches = 3.0 * smooth_field(rng, b.surface.shape, (30.0 / p[0], 30.0 / p[2]))
    level += np.where(labels == _SC, patches[:, None, :], np.float32(0.0))
    top = max(int(np.floor(np.min(b.surface))), 0)
    if top >= labels.shape[1]:
        return level
    # Only rows from the shallowest skin surface down hold tissue.
    rows = np.arange(top, labels.shape[1], dtype=np.float32)[None, :, None] + 0.5
    tissue = level[:, top:]
    slab = labels[:, top:]
    dermal = slab >= _DEJ
    np.copyto(tissue, _dermis_db((rows - b.dej[:, None, :]) * p[1], b, p, look), where=dermal)
    mottle = coarse_field(rng, tissue.shape, (30.0 / p[0], 15.0 / p[1], 30.0 / p[2]))
    mottle *= np.exp(-np.maximum(rows - b.surface[:, None, :], 0.0) * (p[1] / 250.0))
    mottle *= np.float32(look.texture_db)
    np.subtract(tissue, mottle, out=tissue, where=slab >= _SC)
    return level


def _attenuation(surface: np.ndarray, depth: int, p, look: OCTLook) -> np.ndarray:
    """Beer-Lambert round-trip loss below the surface plus the diffuse background."""
    rows = np.arange(depth, dtype=np.float32)[None, :, None] + 0.5
    t_mm = np.maximum(rows - surface[:, None, :], 0.0) * (p[1] / 1000.0)
    return np.exp(-2.0 * look.attenuation_per_mm * t_mm) + _db_to_linear(-look.diffuse_db)


def _add_hairs(
    rng: np.random.Generator,
    signal: np.ndarray,
    surface: np.ndarray,
    p: tuple[float, float, float],
    hairs_per_mm: float,
    look: OCTLook,
) -> None:
    """Hairs above the skin: bright blobs with a dark shadow column below, in place."""
    n_b, depth, width = signal.shape
    extent_mm = width * p[2] / 1000.0 + (n_b * p[0] / 1000.0 if n_b > 1 else 0.0)
    y = np.arange(n_b, dtype=np.float32)[:, None] * p[0]
    x = np.arange(width, dtype=np.float32)[None, :] * p[2]
    rows = np.arange(depth, dtype=np.float32)[None, :] + 0.5
    for _ in range(rng.poisson(hairs_per_mm * extent_mm)):
        y0, x0 = rng.uniform(0, n_b * p[0]), rng.uniform(0, width * p[2])
        angle, radius = rng.uniform(0, np.pi), rng.uniform(8.0, 25.0)
        height, slope = rng.uniform(0.0, 60.0), rng.uniform(-0.6, 0.6)
        across = -np.sin(angle) * (x - x0) + np.cos(angle) * (y - y0)
        along = np.cos(angle) * (x - x0) + np.sin(angle) * (y - y0)
        bi, wi = np.nonzero(np.abs(across) < radius)
        half_chord = np.sqrt(radius**2 - across[bi, wi] ** 2)[:, None] / p[1]
        lift = np.maximum(height + slope * along[bi, wi], 0.0) + radius + p[1]
        axis = surface[bi, wi][:, None] - lift[:, None] / p[1]
        column = signal[bi, :, wi]
        inside = np.abs(rows - axis) < half_chord
        shadow = _db_to_linear(-look.shadow_db * half_chord * p[1] / radius)
        column = np.where(rows >= axis + half_chord, column * shadow, column)
        signal[bi, :, wi] = np.where(inside, _db_to_linear(look.hair_db), column)


def _noise_floor(
    rng: np.random.Generator, shape: tuple[int, int, int], p, look: OCTLook
) -> np.ndarray:
    """Noise floor (1 on average) with bright vertical streaks fading from the top."""
    n_b, depth, width = shape
    floor = np.ones(shape, dtype=np.float32)
    rows = min(depth, int(np.ceil(2.5 * look.streak_um / p[1])))
    if rows > 0 and look.streak_db > 0:
        streaks = smooth_field(rng, (n_b, rows, width), (0.0, 30.0 / p[1], 0.8))
        streaks = np.exp(1.7 * streaks - 1.45)  # log-normal, mean 1: sparse bright streaks
        fade = np.exp(-(((np.arange(rows, dtype=np.float32) + 0.5) * p[1] / look.streak_um) ** 2))
        floor[:, :rows] += (_db_to_linear(look.streak_db) - 1.0) * fade[None, :, None] * streaks
    return floor


def render(
    seed: np.random.SeedSequence,
    labels: np.ndarray,
    b: Boundaries,
    p: tuple[float, float, float],
    look: OCTLook,
    *,
    hairs_per_mm: float,
    tissue_window_um: float | None,
) -> np.ndarray:
    """Render the uint16 OCT image ``(n_bscans, depth, width)`` of a labelled phantom.

    Texture, hairs and noise draw from separate streams of ``seed``, so changing one
    (e.g. the number of hairs) leaves the others as they were.
    """
    n_b, depth, width = labels.shape
    texture_rng, hair_rng, noise_rng = (np.random.default_rng(s) for s in seed.spawn(3))
    signal = _db_to_linear(_reflectivity_db(texture_rng, labels, b, p, look))
    signal *= _attenuation(b.surface, depth, p, look)
    free_gel = b.gel_top if b.glass_top is None else None
    for interface, db in (
        (b.glass_top, look.glass_db), (b.glass_bottom, look.glass_db), (free_gel, look.gel_surface_db)
    ):
        if interface is not None:
            bi, wi = np.nonzero((interface >= 0) & (interface < depth))
            signal[bi, np.floor(interface[bi, wi]).astype(np.intp), wi] = _db_to_linear(db)
    if b.glass_top is None and hairs_per_mm > 0:
        _add_hairs(hair_rng, signal, b.surface, p, hairs_per_mm, look)
    if tissue_window_um is not None:
        rows = np.arange(depth, dtype=np.float32)[None, :, None] + 0.5
        signal[rows >= b.surface[:, None, :] + tissue_window_um / p[1]] = 0.0
    psf = (0.0, look.resolution_um[0] / p[1], look.resolution_um[1] / p[2])
    signal = ndi.gaussian_filter(signal, psf, truncate=3.0)
    signal += _noise_floor(noise_rng, labels.shape, p, look)
    signal *= speckle(noise_rng, labels.shape, psf)
    display = (np.float32(10.0) * np.log10(signal) - look.display_floor_db) / look.display_range_db
    return (np.clip(display, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
