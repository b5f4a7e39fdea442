"""Skin-biopsy phantom: an immunostained section with nerve fibres and exact crossings.

The image mimics a 20× brightfield IHC image (or its fluorescent counterpart) of a
vertical skin section: blank slide above, stratum corneum and epidermis on a wavy
dermis (rete ridges), haematoxylin nuclei, and thin nerve fibres rising from the
subepidermal plexus into the epidermis. The ground truth follows the EFNS counting
rules: a fibre crossing the dermal-epidermal junction (DEJ) counts once, a fibre
branching above it counts once, a fibre splitting below it counts once per branch
that crosses; fibres stopping short, running along the DEJ, and fragments do not count.

Coordinates are ``(row, col)`` pixel centres, as in napari Points. The DEJ is the
polyline through ``(dej[c], c)`` and pixel ``(r, c)`` is dermis when ``r >= dej[c]``; in
the depth convention of :mod:`skinseg.measure.boundaries` that boundary sits at depth
``dej + 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.color import hed2rgb

from skinseg.classes import TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.synth._fibres import KINDS, MAX_DEJ_SLOPE, Fibre, Skin, place_fibres, render_fibres, smooth_noise

__all__ = ["KINDS", "BiopsyPhantom", "Fibre", "biopsy_phantom"]

DEFAULT_PIXEL_SIZE_UM = 0.5
"""µm per pixel of the default phantom: a 20× objective on a typical microscope camera."""

_EPIDERMIS = TISSUE_CLASSES.value_of("epidermis")
_DERMIS = TISSUE_CLASSES.value_of("dermis")


@dataclass(frozen=True, eq=False)
class BiopsyPhantom:
    """A synthetic skin-biopsy image and its exact ground truth.

    Attributes
    ----------
    image
        ``(H, W, 3)`` uint8 RGB.
    tissue
        ``(H, W)`` uint8 labels in ``TISSUE_CLASSES`` (0 slide, 1 epidermis incl. stratum
        corneum, 2 dermis).
    nerves
        ``(H, W)`` uint8 0/1 nerve-fibre mask (fibres 1–4 px wide).
    fibre_labels
        ``(H, W)`` uint16: index into ``fibres`` plus one on each nerve pixel, else 0.
    crossings
        ``(n, 2)`` float ``(row, col)`` where fibre centrelines meet the DEJ, by column.
    dej, surface
        ``(W,)`` float rows of the DEJ and of the top of the section per column.
    fibres
        Per-fibre records (kind, centrelines, radius, crossings, hard-case flag).
    pixel_size_um
        µm per pixel, both axes.
    stain
        ``"dab"`` (brightfield) or ``"fluorescent"``.
    seed
        The seed that made it.
    """

    image: np.ndarray
    tissue: np.ndarray
    nerves: np.ndarray
    fibre_labels: np.ndarray
    crossings: np.ndarray
    dej: np.ndarray
    surface: np.ndarray
    fibres: tuple[Fibre, ...]
    pixel_size_um: float
    stain: str
    seed: int

    @property
    def count(self) -> int:
        """Number of true crossings (EFNS count)."""
        return len(self.crossings)

    @property
    def dej_length_um(self) -> float:
        """Length of the DEJ polyline in µm."""
        return _polyline_length(self.dej) * self.pixel_size_um

    @property
    def surface_length_um(self) -> float:
        """Length of the section's top surface in µm (the EFNS reference length)."""
        return _polyline_length(self.surface) * self.pixel_size_um

    def to_image_data(self) -> ImageData:
        """The image with its pixel size, as the readers return images."""
        return ImageData(
            self.image, (self.pixel_size_um,) * 2, rgb=True,
            source=f"biopsy phantom (seed {self.seed}, {self.stain})",
        )


def _polyline_length(rows: np.ndarray) -> float:
    return float(np.hypot(1.0, np.diff(rows)).sum())


def _check(
    shape: tuple[int, ...], pixel_size_um: float, stain: str, n_fibres: int | None, noise: float
) -> None:
    problems = {
        f"shape must be (height, width), each ≥ 128 px; got {shape}": len(shape) != 2 or min(shape) < 128,
        f"pixel_size_um must be a positive number of µm; got {pixel_size_um}":
            not (np.isfinite(pixel_size_um) and pixel_size_um > 0),
        f"stain must be 'dab' or 'fluorescent'; got {stain!r}": stain not in ("dab", "fluorescent"),
        f"n_fibres must be ≥ 0 or None; got {n_fibres}": n_fibres is not None and n_fibres < 0,
        f"noise must be ≥ 0; got {noise}": not noise >= 0,
    }
    for message, bad in problems.items():
        if bad:
            raise SkinsegInputError(f"biopsy_phantom: {message}")


def _anatomy(rng: np.random.Generator, shape: tuple[int, int], px: float) -> tuple[Skin, float]:
    """Wavy surface and DEJ with rete ridges; also the stratum corneum thickness (px)."""
    h, w = shape
    cols = np.arange(w, dtype=float)
    top = rng.uniform(0.05, 0.18) * h
    sc, epi, rete_amp = rng.uniform(8, 18) / px, rng.uniform(45, 90) / px, rng.uniform(15, 50) / px
    scale = min(1.0, 0.55 * h / (top + sc + epi + rete_amp))  # small images: squeeze the layers
    sc, epi, rete_amp = sc * scale, epi * scale, rete_amp * scale
    surface = (
        top
        + smooth_noise(rng, cols, (200 / px, 800 / px), rng.uniform(5, 20) / px * scale)
        + smooth_noise(rng, cols, (20 / px, 60 / px), 1.0 / px * scale)
    )
    warp = smooth_noise(rng, cols, (150 / px, 400 / px), 1.5)
    phase = 2 * np.pi * cols / (rng.uniform(90, 200) / px) + rng.uniform(0, 2 * np.pi) + warp
    pegs = ((1 - np.cos(phase)) / 2) ** rng.uniform(0.8, 2.0) - 0.5
    rete = rete_amp * (0.7 + smooth_noise(rng, cols, (200 / px, 600 / px), 0.3)) * pegs
    low = smooth_noise(rng, cols, (300 / px, 800 / px), rng.uniform(5, 20) / px * scale)
    room = 0.95 * MAX_DEJ_SLOPE - np.abs(np.diff(low))
    steep = np.abs(np.diff(rete))
    rete *= min(1.0, float(np.min(room[steep > 0] / steep[steep > 0], initial=1.0)))
    dej = top + sc + epi + low + rete
    dej += max(0.0, sc + 15 / px * scale - float(np.min(dej - surface)))
    return Skin(surface, dej, (h, w)), sc


def _tissue_labels(skin: Skin) -> np.ndarray:
    rows = np.arange(skin.shape[0], dtype=float)[:, None]
    labels = np.where(rows >= skin.surface[None], _EPIDERMIS, 0)
    return np.where(rows >= skin.dej[None], _DERMIS, labels).astype(np.uint8)


def _blobs(
    rng: np.random.Generator, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
    sigma: tuple[float, float],
) -> np.ndarray:
    """Gaussian blobs of peak about 1 at the given points (nuclei)."""
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    flat = rows[keep].astype(np.intp) * shape[1] + cols[keep].astype(np.intp)
    impulses = np.bincount(flat, weights=rng.uniform(0.7, 1.3, flat.size), minlength=shape[0] * shape[1])
    impulses = impulses.reshape(shape).astype(np.float32) * (2 * np.pi * sigma[0] * sigma[1])
    return ndi.gaussian_filter(impulses, sigma, truncate=3.0)


def _nuclei(rng: np.random.Generator, skin: Skin, tissue: np.ndarray, sc: float, px: float) -> np.ndarray:
    """Nuclei density in [0, 1): dense keratinocytes, a basal row on the DEJ, sparse fibroblasts."""
    h, w = skin.shape
    n = int(h * w / (10.0 / px) ** 2)
    r, c = rng.uniform(0, h, n), rng.uniform(0, w, n)
    ri, ci = r.astype(np.intp), c.astype(np.intp)
    viable = (tissue[ri, ci] == _EPIDERMIS) & (r > skin.surface_at(c) + sc)
    fibroblast = (tissue[ri, ci] == _DERMIS) & (rng.random(n) < 0.08)
    cb = np.arange(rng.uniform(0, 6 / px), w, 6 / px)
    cb += rng.normal(0, 1 / px, cb.size)
    rb = skin.dej_at(cb) - rng.uniform(2.5, 5.0, cb.size) / px
    s = 1.0 / px
    blob = (
        _blobs(rng, (h, w), r[viable], c[viable], (1.8 * s, 1.8 * s))
        + _blobs(rng, (h, w), rb, cb, (2.6 * s, 1.6 * s))
        + _blobs(rng, (h, w), r[fibroblast], c[fibroblast], (1.0 * s, 3.0 * s))
    )
    return np.tanh(2.0 * blob)


def _texture(rng: np.random.Generator, shape: tuple[int, int], px: float) -> np.ndarray:
    """Streaky texture in [0, 1] (collagen bundles, keratin layers), mostly horizontal."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0.8 / px, 8.0 / px))
    return np.clip(0.5 + 0.5 * noise / (noise.std() + 1e-6), 0.0, 1.0)


def _layers(skin: Skin, tissue: np.ndarray, sc: float) -> dict[str, np.ndarray]:
    """Soft-edged masks (float32) of stratum corneum, viable epidermis and dermis."""
    rows = np.arange(skin.shape[0], dtype=float)[:, None]
    corneum = (tissue == _EPIDERMIS) & (rows < skin.surface[None] + sc)
    masks = {"corneum": corneum, "viable": (tissue == _EPIDERMIS) & ~corneum, "dermis": tissue == _DERMIS}
    return {k: ndi.gaussian_filter(m.astype(np.float32), 1.0) for k, m in masks.items()}


def _finish(rgb: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Slight optical blur and sensor noise, then uint8."""
    rgb = ndi.gaussian_filter(rgb.astype(np.float32), (0.7, 0.7, 0))
    rgb += noise * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _render_dab(
    layers: dict[str, np.ndarray], nuclei: np.ndarray, texture: np.ndarray, fibres: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Brightfield: haematoxylin counterstain and DAB fibres, mixed with ``hed2rgb``."""
    h_amount = rng.uniform(0.8, 1.25)
    haem = h_amount * (
        layers["corneum"] * (0.01 + 0.008 * texture)
        + layers["viable"] * (0.025 + 0.06 * nuclei)
        + layers["dermis"] * (0.008 + 0.014 * texture + 0.07 * nuclei)
    )
    tissue = layers["corneum"] + layers["viable"] + layers["dermis"]
    dab = rng.uniform(0.12, 0.2) * fibres + 0.006 * tissue + 0.012 * layers["corneum"]
    return hed2rgb(np.stack([haem, np.zeros_like(haem), dab], axis=-1))


def _render_fluorescent(
    layers: dict[str, np.ndarray], nuclei: np.ndarray, texture: np.ndarray, fibres: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Fluorescence: dark slide, faint autofluorescence, DAPI-blue nuclei, green fibres."""
    auto = rng.uniform(0.7, 1.3) * (
        layers["corneum"] * (0.10 + 0.06 * texture)
        + layers["viable"] * 0.04
        + layers["dermis"] * 0.06 * texture
    )
    tissue = layers["corneum"] + layers["viable"] + layers["dermis"]
    green = 0.03 + 0.8 * auto + rng.uniform(0.7, 1.0) * fibres
    red = 0.03 + auto + 0.15 * fibres
    blue = 0.04 + 0.02 * tissue + rng.uniform(0.35, 0.6) * nuclei * tissue
    return np.clip(np.stack([red, green, blue], axis=-1), 0.0, 1.0)


def biopsy_phantom(
    shape: tuple[int, int] = (1200, 1600),
    pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM,
    *,
    seed: int = 0,
    stain: Literal["dab", "fluorescent"] = "dab",
    n_fibres: int | None = None,
    hard_cases: bool = True,
    noise: float = 0.02,
) -> BiopsyPhantom:
    """Make a synthetic immunostained skin-biopsy image with exact nerve-crossing truth.

    Parameters
    ----------
    shape
        ``(height, width)`` in px; the default is the seed paper's 1600×1200 frame.
    pixel_size_um
        µm per pixel; 0.5 µm is a 20× objective on a common microscope camera. Anatomy is
        drawn in µm (epidermis 45–90 µm, stratum corneum 8–18 µm, rete ridges 90–200 µm
        apart, fibres 0.7–1.9 µm wide), so it scales with this. Short images (under about
        0.4 mm) squeeze the layers so that the dermis keeps the lower half.
    seed
        Everything is determined by it; the two stains of one seed share the geometry.
    stain
        ``"dab"``: brightfield, blue haematoxylin, brown DAB fibres.
        ``"fluorescent"``: dark slide, blue nuclei, green fibres.
    n_fibres
        Ordinary crossing fibres; ``None`` draws 0–6 (0–20 without hard cases). Fewer
        are placed when the width runs out (12 µm kept between features).
    hard_cases
        Add the hard cases: fibres splitting 1–3 µm below the DEJ that cross as two,
        unrelated fibres crossing 2.5–7.5 µm apart, branches 1.5–7.5 µm above the DEJ,
        fibres stopping 0.5–3 µm beyond a safe clearance below it, fibres running along
        it, dermal fibres with an epidermal piece across a gap, epidermal fragments.
    noise
        Standard deviation of additive noise on [0, 1] intensities.

    Returns
    -------
    BiopsyPhantom
    """
    shape = tuple(int(s) for s in shape)
    _check(shape, pixel_size_um, stain, n_fibres, noise)
    geometry, render = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    skin, sc = _anatomy(geometry, shape, pixel_size_um)
    tissue = _tissue_labels(skin)
    fibres = place_fibres(geometry, skin, pixel_size_um, sc, n_fibres, hard_cases)
    nerves, fibre_labels, fibre_stain = render_fibres(fibres, shape, geometry, pixel_size_um)
    nuclei = _nuclei(geometry, skin, tissue, sc, pixel_size_um)
    texture = _texture(geometry, shape, pixel_size_um)
    layers = _layers(skin, tissue, sc)
    paint = _render_dab if stain == "dab" else _render_fluorescent
    image = _finish(paint(layers, nuclei, texture, fibre_stain, render), render, noise)
    crossings = np.concatenate([f.crossings for f in fibres] + [np.empty((0, 2))])
    crossings = crossings[np.argsort(crossings[:, 1], kind="stable")]
    return BiopsyPhantom(
        image=image, tissue=tissue, nerves=nerves.astype(np.uint8), fibre_labels=fibre_labels,
        crossings=crossings, dej=skin.dej, surface=skin.surface, fibres=tuple(fibres),
        pixel_size_um=float(pixel_size_um), stain=stain, seed=seed,
    )
