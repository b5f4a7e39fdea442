"""Nerve fibres crossing the dermal-epidermal junction (DEJ) and IENFD, from masks.

Two rules find the crossings of a nerve mask with the dermis/epidermis boundary
(``docs/crossings.md``):

``"seed"``
    The reference study's rule: smooth the dermis map, threshold it, flip small
    enclosed regions, take a band along the dermis edge, cluster the nerve pixels in it
    with DBSCAN, one crossing per cluster, drop crossings with few nerve pixels on
    either side.
``"skeleton"`` (default)
    Follow the skeleton of the nerve mask across the boundary: each place where a
    skeleton path passes from dermis to epidermis, and goes on some way on both sides,
    is one crossing (EFNS: a fibre branching above the junction counts once, fibres
    splitting below count once per branch that crosses).

Every length is in µm and converted with the pixel size; the defaults are the seed's
pixel values at its 20× magnification, which is 0.5 µm per pixel (the biopsy
phantom's default): σ 10 px = 5 µm, DBSCAN ε 3 px = 1.5 µm, window 17 px = 8.5 µm.

The intraepidermal nerve fibre density (IENFD) is crossings per mm of the epidermal
surface (the top edge of the epidermis against the slide: the EFNS linear density), and
also per mm of DEJ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours

from skinseg.classes import TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.measure import _crossing_rules as rules

__all__ = ["CrossingParams", "CrossingResult", "crossing_density", "edge_length_mm", "find_crossings"]

_EPIDERMIS = TISSUE_CLASSES.value_of("epidermis")
_DERMIS = TISSUE_CLASSES.value_of("dermis")
RULES = ("skeleton", "seed")


@dataclass(frozen=True)
class CrossingParams:
    """Parameters of the crossing rules, lengths in µm.

    Attributes
    ----------
    rule
        ``"skeleton"`` (default) or ``"seed"``.
    smooth_sigma_um
        Seed rule: Gaussian σ on the dermis map (seed: 10 px at 20×).
    dermis_threshold
        Dermis where the (smoothed, for the seed rule) map is at least this.
    min_region_fraction
        Enclosed regions (not touching the image border) of either class smaller than
        this fraction of the image are flipped.
    band_width_um
        Seed rule: width of the boundary band straddling the dermis edge.
    dbscan_eps_um, dbscan_min_samples
        Seed rule: DBSCAN of the nerve pixels in the band (seed: ε 3 px, 4 points).
    window_um, min_side_pixels
        Seed rule: a crossing needs at least ``min_side_pixels`` nerve pixels on each
        side of the boundary in a square window this wide (seed: 17 × 17 px, 5 px).
    junction_um
        Skeleton rule: skeleton pixels this close to the boundary (at least 1.5 px) form
        the junction pieces; one piece touching both sides is one crossing.
    reach_um, follow_um
        Skeleton rule: a crossing counts when the fibre, followed up to ``follow_um``
        along its skeleton from the junction, gets ``reach_um`` deep into each side.
    """

    rule: str = "skeleton"
    smooth_sigma_um: float = 5.0
    dermis_threshold: float = 0.6
    min_region_fraction: float = 0.2
    band_width_um: float = 2.0
    dbscan_eps_um: float = 1.5
    dbscan_min_samples: int = 4
    window_um: float = 8.5
    min_side_pixels: int = 5
    junction_um: float = 0.75
    reach_um: float = 4.0
    follow_um: float = 15.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise SkinsegInputError(f"crossings: rule must be one of {RULES}; got {self.rule!r}")
        lengths = ("smooth_sigma_um", "band_width_um", "dbscan_eps_um", "window_um", "junction_um",
                   "follow_um")
        for name in lengths:
            if not getattr(self, name) > 0:
                raise SkinsegInputError(f"crossings: {name} must be > 0 µm; got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class CrossingResult:
    """Crossings found in one image, with the lengths that turn the count into IENFD.

    Attributes
    ----------
    points
        ``(n, 2)`` float ``(row, col)`` px of the crossings.
    dermis
        bool mask of the dermis the rule used (cleaned).
    boundary
        bool boundary band (seed rule) or junction pixels (skeleton rule).
    surface_length_mm
        Length of the epidermal surface (epidermis against slide), the EFNS denominator;
        NaN when the tissue is a dermis probability map (no epidermis known).
    dej_length_mm
        Length of the dermis edge against the epidermis (dermis thresholded and cleaned,
        not smoothed: the same for both rules).
    pixel_size_um
        µm per pixel used.
    params
        The parameters used.
    warnings
        Plain-language notes on the input (e.g. no epidermis).
    """

    points: np.ndarray
    dermis: np.ndarray
    boundary: np.ndarray
    surface_length_mm: float
    dej_length_mm: float
    pixel_size_um: float
    params: CrossingParams
    warnings: tuple[str, ...] = field(default=())

    @property
    def count(self) -> int:
        """Number of crossings."""
        return len(self.points)

    @property
    def ienfd_per_mm(self) -> float:
        """Crossings per mm of epidermal surface (EFNS linear density)."""
        return crossing_density(self.count, self.surface_length_mm)

    @property
    def ienfd_per_mm_dej(self) -> float:
        """Crossings per mm of DEJ."""
        return crossing_density(self.count, self.dej_length_mm)


def crossing_density(count: int, length_mm: float) -> float:
    """Crossings per mm: ``count / length_mm``; NaN when the length is 0 or unknown.

    Use it to recount live after points were added or deleted by hand.
    """
    if not (np.isfinite(length_mm) and length_mm > 0):
        return float("nan")
    return float(count) / float(length_mm)


def edge_length_mm(inside: np.ndarray, other: np.ndarray, pixel_size_um: float) -> float:
    """Length in mm of the edge of mask ``inside`` where it meets mask ``other``.

    The edge is the 0.5 iso-line (marching squares) of ``inside`` smoothed with a
    Gaussian of σ 1 px, which takes the pixel staircase out (on phantom DEJs the length
    is then within about 1 % of the exact polyline's, against 5 % too long without); a
    piece of it counts when it lies within 2 px of ``other``. Edges along the image
    border are not counted.
    """
    inside, other = np.asarray(inside, bool), np.asarray(other, bool)
    if not inside.any() or not other.any():
        return 0.0
    smooth = ndi.gaussian_filter(inside.astype(np.float32), 1.0)
    contours = [c for c in find_contours(smooth, 0.5) if len(c) > 1]
    if not contours:
        return 0.0
    a = np.concatenate([c[:-1] for c in contours])
    b = np.concatenate([c[1:] for c in contours])
    r, c = np.rint((a + b) / 2).astype(np.intp).T
    touches = ndi.binary_dilation(other, iterations=2)[r, c]
    return float(np.hypot(*(b - a)[touches].T).sum()) * pixel_size_um / 1000.0


def _check_inputs(tissue: np.ndarray, nerves: np.ndarray, pixel_size_um: float | None) -> None:
    if pixel_size_um is None or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        raise SkinsegInputError(
            f"crossings: the pixel size must be a positive number of µm; got {pixel_size_um}. "
            "Set the image's pixel size (µm per px) before counting crossings."
        )
    if tissue.ndim != 2 or nerves.ndim != 2:
        raise SkinsegInputError(
            f"crossings: tissue and nerves must be 2-D (height, width); got {tissue.shape} and "
            f"{nerves.shape}. Pass one image's masks, not a stack or an RGB image."
        )
    if tissue.shape != nerves.shape:
        raise SkinsegInputError(
            f"crossings: tissue {tissue.shape} and nerves {nerves.shape} differ in shape; "
            "segment both from the same image."
        )
    if np.issubdtype(tissue.dtype, np.floating) and not np.isfinite(tissue).all():
        raise SkinsegInputError("crossings: the dermis probability map holds NaN or infinity.")


def find_crossings(
    tissue: np.ndarray, nerves: np.ndarray, pixel_size_um: float | None,
    params: CrossingParams | None = None,
) -> CrossingResult:
    """Find nerve fibres crossing the dermal-epidermal boundary.

    Parameters
    ----------
    tissue
        ``(H, W)`` integer labels in ``TISSUE_CLASSES`` (0 slide, 1 epidermis, 2 dermis)
        or a float dermis probability map in [0, 1].
    nerves
        ``(H, W)`` nerve mask (bool or 0/1).
    pixel_size_um
        µm per pixel (square pixels), > 0.
    params
        Rule and parameters; :class:`CrossingParams` defaults when ``None``.

    Returns
    -------
    CrossingResult
        Without epidermis (labels with no class 1) there is nothing to cross into: count
        0, surface length 0, IENFD NaN, and a warning saying so. Without nerves: count 0,
        IENFD 0, lengths as measured.

    Raises
    ------
    SkinsegInputError
        Pixel size 0, negative or missing; arrays not 2-D or of different shapes; NaN in
        the probability map.
    """
    params = CrossingParams() if params is None else params
    tissue, nerves = np.asarray(tissue), np.asarray(nerves) > 0
    _check_inputs(tissue, nerves, pixel_size_um)
    px = float(pixel_size_um)
    labels = not np.issubdtype(tissue.dtype, np.floating)
    if labels:
        epidermis = tissue == _EPIDERMIS
        dermis_map = (tissue == _DERMIS).astype(np.float32)
        surface_mm = edge_length_mm(epidermis, tissue == 0, px)
    else:
        dermis_map = tissue.astype(np.float32)
        surface_mm = float("nan")

    warnings: list[str] = []
    if labels and not epidermis.any():
        warnings.append("no epidermis in the tissue labels: no crossings, IENFD undefined")
        empty = np.zeros(tissue.shape, bool)
        return CrossingResult(np.empty((0, 2)), tissue == _DERMIS, empty, 0.0, 0.0, px, params,
                              tuple(warnings))
    plain = rules.clean_dermis(dermis_map >= params.dermis_threshold, params.min_region_fraction)
    epidermis_side = epidermis & ~plain if labels else ~plain
    if params.rule == "seed":
        points, dermis, boundary = rules.seed_rule(dermis_map, nerves, px, params)
    else:
        dermis = plain
        points, boundary = rules.skeleton_rule(plain, epidermis_side, nerves, px, params)
    dej_mm = edge_length_mm(plain, epidermis_side, px)
    if not nerves.any():
        warnings.append("no nerve pixels: count 0")
    return CrossingResult(points, dermis, boundary, surface_mm, dej_mm, px, params, tuple(warnings))
