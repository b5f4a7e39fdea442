"""Intensity of the OCT skin phantom: reflectivity, attenuation, speckle, log display.

The image is rendered as linear OCT intensity relative to the noise floor (= 1):
layer reflectivity × Beer-Lambert attenuation (+ a multiple-scattering background),
blurred by the point-spread function, plus the noise floor, times correlated speckle;
then log-compressed to uint16 like a vendor's B-scan export.

The true boundaries mean what an expert's annotation of a log-scaled B-scan means (the
face-dev masks). A bright edge seen in dB is half way up well before the edge itself, and
experts mark the skin surface half way up the entry rise; so the skin's entry step, and
the reflecting lines of glass and gel, are drawn :func:`half_rise_offset_px` below their
true depth, which puts the half-way point of each displayed rise on the truth. The DEJ
is the centre of a wide reflectivity ramp, which puts it near the top of the displayed
dark-epidermis → bright-dermis rise, as in the masks.
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
        The reflectivity rises from the epidermal to the dermal level along a logistic
        ramp centred on the true DEJ, ``dej_transition_um`` from 10 % to 90 % (small =
        sharp DEJ edge).
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
    roughness_fill, roughness_um
        Sub-resolution roughness of the skin surface: at height ``h`` above the skin's
        entry, skin still fills a fraction ``roughness_fill × exp(-h / roughness_um)`` of
        the depth, the faint foot that a log display shows before the entry rise.
    resolution_um
        Gaussian sigma of the point-spread function (axial, lateral); sets the speckle
        grain and the blur of the layers.
    display_floor_db, display_range_db
        Log display: ``display_floor_db`` maps to 0 and ``+ display_range_db`` to 65535.
    """

    stratum_corneum_db: float = 32.0
    epidermis_db: float = 21.65
    gel_db: float = 6.0
    papillary_db: float = 30.9
    reticular_db: float = 18.05
    papillary_um: float = 87.5
    follicle_db: float = 6.0
    texture_db: float = 3.5
    dej_transition_um: float = 55.0
    attenuation_per_mm: float = 4.4
    diffuse_db: float = 9.9
    glass_db: float = 40.0
    gel_surface_db: float = 25.0
    hair_db: float = 28.0
    shadow_db: float = 6.0
    streak_db: float = 8.0
    streak_um: float = 90.0
    roughness_fill: float = 0.025
    roughness_um: float = 4.0
    resolution_um: tuple[float, float] = (2.2, 6.0)
    display_floor_db: float = -2.6
    display_range_db: float = 45.0


def _db_to_linear(db: np.ndarray | float) -> np.ndarray:
    return np.power(np.float32(10.0), np.asarray(db, dtype=np.float32) / np.float32(10.0))


def _dermis_db(below_dej_um: np.ndarray, b: Boundaries, look: OCTLook) -> np.ndarray:
    """Reflectivity (dB) under the stratum corneum: epidermal level rising across the DEJ
    to the dermal one (papillary → reticular fall-off, dark follicle cones); float32."""
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
    # The DEJ edge: a logistic ramp from the epidermal level, centred on the true DEJ.
    half_scale = look.dej_transition_um / np.log(9.0)  # logistic(x / s) = (1 + tanh(x / 2s)) / 2
    rise = np.multiply(below_dej_um, np.float32(1.0 / half_scale), out=t)
    np.tanh(rise, out=rise)
    rise += np.float32(1.0)
    rise *= np.float32(0.5)
    level -= np.float32(look.epidermis_db)
    level *= rise
    level += np.float32(look.epidermis_db)
    return level


def _blend_db(a_db: np.ndarray, b_db: np.ndarray | float, weight: np.ndarray) -> np.ndarray:
    """dB of ``weight`` × intensity ``a_db`` + (1 − ``weight``) × intensity ``b_db``."""
    mix = weight * _db_to_linear(a_db) + (1.0 - weight) * _db_to_linear(b_db)
    return np.float32(10.0) * np.log10(mix)


def _skin_fill(
    top: np.ndarray, height: float, entry: np.ndarray, look: OCTLook, axial_um: float
) -> np.ndarray:
    """Fraction of the depths ``[top, top + height)`` (px) filled with skin.

    All of it below ``entry``; above it, the rough surface's foot (``roughness_fill``,
    fading over ``roughness_um``), integrated over the interval.
    """
    below = np.clip(top + height - entry, 0.0, height)
    if look.roughness_fill <= 0 or look.roughness_um <= 0:
        return below / np.float32(height)
    length = np.float32(look.roughness_um / axial_um)
    near = np.exp(-np.maximum(entry - top - height, 0.0) / length)  # interval bottom
    far = np.exp(-np.maximum(entry - top, 0.0) / length)  # interval top
    return (below + np.float32(look.roughness_fill) * length * (near - far)) / np.float32(height)


def _reflectivity_db(
    rng: np.random.Generator, labels: np.ndarray, b: Boundaries, entry: np.ndarray,
    above_skin: float, p, look: OCTLook,
) -> np.ndarray:
    """Reflectivity (dB) per voxel: air, glass and gel by label; skin from the true depths.

    The skin starts at ``entry`` (px): each row is weighted by the fraction of it filled
    with skin (:func:`_skin_fill`), so the entry keeps its sub-pixel depth. The stratum
    corneum ends as far below its true bottom as ``entry`` lies below the true surface.
    Above the skin lies ``above_skin`` (dB: the gel's level, or nothing).
    """
    lut = np.full(256, _ABSENT_DB, dtype=np.float32)
    lut[_GEL] = look.gel_db
    lut[_SC:] = above_skin
    level = lut[labels]
    foot = 8.0 * look.roughness_um / p[1] if look.roughness_fill > 0 else 0.0
    top = max(int(np.floor(np.min(entry) - foot)), 0)
    if top >= labels.shape[1]:
        return level
    # Only rows from the shallowest skin (its foot included) down hold skin.
    rows = np.arange(top, labels.shape[1], dtype=np.float32)[None, :, None] + 0.5
    skin = _dermis_db((rows - b.dej[:, None, :]) * p[1], b, look)
    # The entry reflection varies with the local surface angle: patchy along the surface.
    patches = 3.0 * smooth_field(rng, b.surface.shape, (30.0 / p[0], 30.0 / p[2]))
    sc_end = b.sc_bottom + (entry - b.surface)
    in_sc = np.clip(sc_end[:, None, :] - rows + 0.5, 0.0, 1.0)
    skin += in_sc * ((look.stratum_corneum_db + patches)[:, None, :] - skin)
    mottle = coarse_field(rng, skin.shape, (30.0 / p[0], 15.0 / p[1], 30.0 / p[2]))
    mottle *= np.exp(-np.maximum(rows - entry[:, None, :], 0.0) * (p[1] / 250.0))
    mottle *= np.float32(look.texture_db)
    skin -= mottle
    fill = _skin_fill(rows - 0.5, 1.0, entry[:, None, :], look, p[1])
    part = (fill > 0) & (fill < 1)
    skin[part] = _blend_db(skin[part], above_skin, fill[part])
    np.copyto(level[:, top:], skin, where=fill > 0)
    return level


def half_rise_offset_px(
    look: OCTLook, axial_um: float, above_db: float, below_db: float, *, line: bool = False
) -> float:
    """How far (px) below its true boundary an edge is drawn so the boundary sits half way
    up the displayed rise, where an annotator of a log-scaled B-scan sees the edge.

    Seen in dB, the skin's entry step from ``above_db`` to ``below_db`` (rough foot
    included), blurred by the point-spread function, is half way up (the geometric mean
    of the intensities far above and at the peak, noise floor included) before the step
    itself; a thin bright line (``line``: one pixel of ``below_db``) even further before
    its centre. Returns the distance from that half-way point down to the step, or to the
    line's centre, found on a fine 1-D grid.
    """
    fine = 16  # samples per pixel
    reach = int(fine * (8 * look.resolution_um[0] + 12 * look.roughness_um) / axial_um) + fine
    x = (np.arange(-reach, reach, dtype=np.float32) + 0.5) / fine  # px from the edge
    if line:
        fill = ((x >= 0) & (x < 1)).astype(np.float32)
    else:
        fill = _skin_fill(x - 0.5 / fine, 1.0 / fine, np.float32(0.0), look, axial_um)
    pattern = fill * _db_to_linear(below_db) + (1.0 - fill) * _db_to_linear(above_db)
    blurred = 1.0 + _psf(pattern[None, :, None], look, (1.0, axial_um / fine, 1.0))[0, :, 0]
    peak = int(np.argmax(blurred))
    half = np.sqrt(blurred[0] * blurred[peak])
    return (0.5 if line else 0.0) - float(np.interp(half, blurred[: peak + 1], x[: peak + 1]))


def _psf_sigma(look: OCTLook, p) -> tuple[float, float, float]:
    """Gaussian sigma (px) of the point-spread function along ``(n_bscans, depth, width)``."""
    return 0.0, look.resolution_um[0] / p[1], look.resolution_um[1] / p[2]


def _psf(signal: np.ndarray, look: OCTLook, p) -> np.ndarray:
    """Blur ``(n, depth, width)`` by the point-spread function."""
    return ndi.gaussian_filter(signal, _psf_sigma(look, p), truncate=3.0)


def _skin_entry(b: Boundaries, p, look: OCTLook) -> tuple[np.ndarray, float]:
    """Depth (px) where the skin's reflectivity starts, and the level (dB) above the skin."""
    above = look.gel_db if b.gel_top is not None else _ABSENT_DB
    if b.glass_bottom is not None and b.gel_top is None:
        # skin pressed on the glass: one interface, whose bright line leads the rise
        offset = half_rise_offset_px(look, p[1], _ABSENT_DB, look.glass_db, line=True)
    else:
        offset = half_rise_offset_px(look, p[1], above, look.stratum_corneum_db)
    return b.surface + np.float32(offset), above


def _attenuation(entry: np.ndarray, depth: int, p, look: OCTLook) -> np.ndarray:
    """Beer-Lambert round-trip loss below the tissue entry plus the diffuse background."""
    rows = np.arange(depth, dtype=np.float32)[None, :, None] + 0.5
    t_mm = np.maximum(rows - entry[:, None, :], 0.0) * (p[1] / 1000.0)
    return np.exp(-2.0 * look.attenuation_per_mm * t_mm) + _db_to_linear(-look.diffuse_db)


def _draw_line(signal: np.ndarray, centre: np.ndarray, value: float) -> None:
    """A one-pixel-thick reflecting line centred at ``centre`` (px, ``(n, width)``), in place.

    The line covers ``[centre - 0.5, centre + 0.5)`` and takes that fraction of each of the
    two rows it overlaps, so it keeps its sub-pixel depth.
    """
    depth = signal.shape[1]
    top = centre - np.float32(0.5)
    first = np.floor(top).astype(np.intp)
    below = top - first  # share of the line in the second row
    for row, share in ((first, 1.0 - below), (first + 1, below)):
        bi, wi = np.nonzero((row >= 0) & (row < depth))
        r, f = row[bi, wi], share[bi, wi]
        signal[bi, r, wi] += f * (value - signal[bi, r, wi])


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
    entry, above_skin = _skin_entry(b, p, look)
    signal = _db_to_linear(_reflectivity_db(texture_rng, labels, b, entry, above_skin, p, look))
    signal *= _attenuation(entry, depth, p, look)
    free_gel = b.gel_top if b.glass_top is None else None
    for interface, db in (
        (b.glass_top, look.glass_db), (b.glass_bottom, look.glass_db), (free_gel, look.gel_surface_db)
    ):
        if interface is not None:
            offset = half_rise_offset_px(look, p[1], _ABSENT_DB, db, line=True)
            _draw_line(signal, interface + np.float32(offset), _db_to_linear(db))
    if b.glass_top is None and hairs_per_mm > 0:
        _add_hairs(hair_rng, signal, b.surface, p, hairs_per_mm, look)
    if tissue_window_um is not None:
        rows = np.arange(depth, dtype=np.float32)[None, :, None] + 0.5
        signal[rows >= b.surface[:, None, :] + tissue_window_um / p[1]] = 0.0
    signal = _psf(signal, look, p)
    signal += _noise_floor(noise_rng, labels.shape, p, look)
    signal *= speckle(noise_rng, labels.shape, _psf_sigma(look, p))
    display = (np.float32(10.0) * np.log10(signal) - look.display_floor_db) / look.display_range_db
    return (np.clip(display, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
