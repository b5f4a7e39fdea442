"""Nerve-fibre geometry for the skin-biopsy phantom: centrelines, hard cases, rasterisation.

Coordinates are ``(row, col)`` in pixel-centre units (pixel ``(r, c)`` is centred on
``(r, c)``, as in napari Points). The dermal-epidermal junction (DEJ) is the polyline
through ``(dej[c], c)``; pixel ``(r, c)`` is dermis when ``r >= dej[c]``. Every feature is
built around that exact boundary, then checked: a centreline changes side exactly as
often as the feature says it crosses, so the crossing ground truth is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import ndimage as ndi

KINDS = (
    "crossing",
    "split_below",
    "branch_above",
    "stops_short",
    "along_boundary",
    "fragment",
    "dermal_only",
    "epidermal_fragment",
)
"""Fibre kinds; only ``crossing``, ``split_below`` (×2) and ``branch_above`` (×1) count."""

STEP = 0.5
"""Spacing of centreline samples, px."""
MAX_WALK_SLOPE = 0.5
"""Largest lateral drift of a rising or sinking fibre, px per px of depth."""
MAX_DEJ_SLOPE = 1.2
"""Steepest DEJ the phantom makes; with MAX_WALK_SLOPE a walk never turns back to it."""


@dataclass(frozen=True, eq=False)
class Fibre:
    """One nerve fibre (a trunk with its branches) and its ground truth.

    Attributes
    ----------
    kind
        One of :data:`KINDS`.
    paths
        Centrelines, each ``(n, 2)`` float ``(row, col)`` samples 0.5 px apart; branches
        start on their parent.
    radius_px
        Half width of the fibre in the nerve mask.
    crossings
        ``(k, 2)`` points where a centreline meets the DEJ (EFNS count of this fibre).
    hard
        True for the issue-6 hard cases (also for the two fibres of an unrelated close pair).
    """

    kind: str
    paths: tuple[np.ndarray, ...]
    radius_px: float
    crossings: np.ndarray
    hard: bool = False

    @property
    def n_crossings(self) -> int:
        """How many times this fibre counts (EFNS rules)."""
        return len(self.crossings)

    @property
    def crosses(self) -> bool:
        """True when the fibre counts at least once."""
        return self.n_crossings > 0


@dataclass(frozen=True)
class Skin:
    """The section's exact boundaries, per column, and the image shape."""

    surface: np.ndarray
    dej: np.ndarray
    shape: tuple[int, int]

    def dej_at(self, col: np.ndarray | float) -> np.ndarray:
        """DEJ row at (fractional) columns: linear between column centres."""
        return np.interp(col, np.arange(self.dej.size), self.dej)

    def surface_at(self, col: np.ndarray | float) -> np.ndarray:
        """Top of the section at (fractional) columns."""
        return np.interp(col, np.arange(self.surface.size), self.surface)

    def on_dej(self, col: float) -> np.ndarray:
        """The boundary point at column ``col``."""
        return np.array([float(self.dej_at(col)), col])


def smooth_noise(
    rng: np.random.Generator, x: np.ndarray, wavelengths: tuple[float, float], amplitude: float, n: int = 3
) -> np.ndarray:
    """Sum of ``n`` random sinusoids over ``x``, bounded by ``amplitude``."""
    lam = rng.uniform(*wavelengths, n)[:, None]
    phase = rng.uniform(0.0, 2 * np.pi, n)[:, None]
    weight = rng.uniform(0.5, 1.0, n)[:, None]
    waves = weight * np.sin(2 * np.pi * np.asarray(x, float)[None] / lam + phase)
    return amplitude * waves.sum(axis=0) / weight.sum()


def walk(
    rng: np.random.Generator, start: np.ndarray, direction: int, length: float, slope: float
) -> np.ndarray:
    """Fibre rising (``direction=-1``) or sinking (``+1``) from ``start`` with smooth drift.

    The drift (lateral px per px of depth) stays within ±:data:`MAX_WALK_SLOPE` and its
    random part fades in over the first 30 px, so paths leave ``start`` along ``slope``.
    """
    t = np.arange(0.0, max(length, STEP) + STEP / 2, STEP)
    wiggle = smooth_noise(rng, t, (25.0, 120.0), 0.45) * np.minimum(1.0, t / 30.0)
    drift = np.clip(slope + wiggle, -MAX_WALK_SLOPE, MAX_WALK_SLOPE)
    lateral = np.concatenate([[0.0], np.cumsum(drift[1:]) * STEP])
    return np.column_stack([start[0] + direction * t, start[1] + lateral])


def segment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Straight centreline from ``a`` to ``b``, samples at most :data:`STEP` apart."""
    n = int(np.ceil(np.hypot(*(b - a)) / STEP)) + 1
    return a + np.linspace(0.0, 1.0, max(n, 2))[:, None] * (b - a)


def clip_path(path: np.ndarray, skin: Skin, *, below_surface: float | None = None) -> np.ndarray:
    """Keep ``path`` up to its first sample outside the image (or above the surface + margin)."""
    rows, cols = path[:, 0], path[:, 1]
    ok = (rows >= 0) & (rows <= skin.shape[0] - 1) & (cols >= 0) & (cols <= skin.shape[1] - 1)
    if below_surface is not None:
        ok &= rows >= skin.surface_at(cols) + below_surface
    return path if ok.all() else path[: int(np.argmin(ok))]


def side_changes(path: np.ndarray, skin: Skin) -> int:
    """How often a centreline passes from one side of the DEJ to the other."""
    side = np.sign(path[:, 0] - skin.dej_at(path[:, 1]))
    side = side[side != 0]
    return int(np.count_nonzero(side[1:] != side[:-1]))


def is_consistent(fibre: Fibre, skin: Skin) -> bool:
    """True when the centrelines change side exactly where the fibre says it crosses."""
    changes = [side_changes(p, skin) for p in fibre.paths]
    lengths_ok = all(len(p) >= 2 for p in fibre.paths)
    return lengths_ok and max(changes) <= 1 and sum(changes) == fibre.n_crossings


class FibreBuilder:
    """Makes each fibre kind on a given skin; lengths in µm are converted to px here.

    Every ``make_*`` method takes the column the feature sits at (its left end for
    features with a span) and a radius in px, and returns a :class:`Fibre`.
    """

    def __init__(self, rng: np.random.Generator, skin: Skin, pixel_size_um: float, sc_px: float) -> None:
        self.rng, self.skin, self.px = rng, skin, pixel_size_um
        self.sc_px = sc_px  # stratum corneum: fibres end below it

    def um(self, low: float, high: float) -> float:
        """A random length between ``low`` and ``high`` µm, in px."""
        return float(self.rng.uniform(low, high)) / self.px

    def radius(self, low: float, high: float) -> float:
        """A random fibre radius between ``low`` and ``high`` µm, in px (at least 0.5)."""
        return max(self.um(low, high), 0.5)

    def clearance(self, radius: float) -> float:
        """Vertical gap that keeps a fibre of ``radius`` px off the DEJ pixels at any DEJ slope."""
        return np.hypot(1.0, MAX_DEJ_SLOPE) * (radius + 1.0)

    def rise(
        self, start: np.ndarray, slope: float, fraction: tuple[float, float] = (0.35, 0.9)
    ) -> np.ndarray:
        """Epidermal part from ``start`` up a random fraction of the room below the stratum corneum."""
        room = start[0] - self.skin.surface_at(start[1]) - self.sc_px
        path = walk(self.rng, start, -1, room * self.rng.uniform(*fraction), slope)
        return clip_path(path, self.skin, below_surface=self.sc_px)

    def sink(self, start: np.ndarray, slope: float) -> np.ndarray:
        """Dermal part from ``start`` down 30–150 µm, returned deep end first."""
        return clip_path(walk(self.rng, start, 1, self.um(30, 150), slope), self.skin)[::-1]

    def drift(self, low: float = 0.0, high: float = 0.35) -> float:
        """A random drift of random sign."""
        return float(self.rng.uniform(low, high) * self.rng.choice([-1.0, 1.0]))

    def through(
        self, col: float, lower: float | None = None, upper: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dermal part (deep end first) and epidermal part of a fibre crossing at ``col``.

        ``upper`` and ``lower`` are the drifts going up and going down from the crossing.
        """
        p = self.skin.on_dej(col)
        upper = self.drift() if upper is None else upper
        lower = -upper + self.drift(0.0, 0.2) if lower is None else lower
        return self.sink(p, lower), self.rise(p, upper)

    def make_crossing(self, col: float, radius: float, *, lower: float | None = None,
                      upper: float | None = None, hard: bool = False) -> Fibre:
        """A fibre from the dermis through the DEJ into the epidermis (counts once)."""
        below, above = self.through(col, lower, upper)
        return Fibre("crossing", (np.concatenate([below, above[1:]]),), radius, above[:1], hard)

    def make_close_pair(self, col: float, radius: float, span: float) -> list[Fibre]:
        """Two unrelated fibres crossing ``span`` px apart, diverging on both sides."""
        left = self.make_crossing(col, radius, lower=-self.rng.uniform(0.2, 0.45),
                                  upper=-self.rng.uniform(0.0, 0.3), hard=True)
        right = self.make_crossing(col + span, radius, lower=self.rng.uniform(0.2, 0.45),
                                   upper=self.rng.uniform(0.0, 0.3), hard=True)
        return [left, right]

    def make_split_below(self, col: float, radius: float, span: float) -> Fibre:
        """A fibre splitting 1–3 µm below the DEJ whose two branches cross ``span`` px apart.

        The split is a few pixels under the junction, so the two crossings touch the
        junction band almost together (EFNS: they count twice).
        """
        p1, p2 = self.skin.on_dej(col), self.skin.on_dej(col + span)
        split = np.array([max(p1[0], p2[0]) + self.um(1.0, 3.0), col + span / 2])
        trunk = self.sink(split, self.drift(0.0, 0.3))
        b1 = np.concatenate([segment(split, p1), self.rise(p1, -self.rng.uniform(0.1, 0.4))[1:]])
        b2 = np.concatenate([segment(split, p2), self.rise(p2, self.rng.uniform(0.1, 0.4))[1:]])
        return Fibre("split_below", (trunk, b1, b2), radius, np.stack([p1, p2]), True)

    def make_branch_above(self, col: float, radius: float) -> Fibre:
        """A crossing fibre that branches 1.5–7.5 µm above the DEJ (counts once)."""
        below, above = self.through(col)
        fork = min(int(round(self.um(1.5, 7.5) / STEP)), len(above) - 2)
        slope = (above[fork + 1, 1] - above[fork, 1]) / STEP if fork > 0 else 0.0
        away = -np.sign(slope or 1.0) * self.rng.uniform(0.3, 0.5)
        branch = self.rise(above[fork], float(np.clip(slope + away, -0.45, 0.45)), (0.2, 0.7))
        main = np.concatenate([below, above[1:]])
        return Fibre("branch_above", (main, branch), radius, above[:1], True)

    def make_stops_short(self, col: float, radius: float) -> Fibre:
        """A dermal fibre whose tip ends 0.5–3 µm beyond a safe clearance below the DEJ.

        The clearance keeps every pixel of the fibre off the DEJ at any DEJ slope, so the
        tip's centre is about 2–5 µm below the junction at the default pixel size.
        """
        tip = self.skin.on_dej(col) + [self.clearance(radius) + self.um(0.5, 3.0), 0.0]
        return Fibre("stops_short", (self.sink(tip, self.drift(0.0, 0.3)),), radius, np.empty((0, 2)), True)

    def make_fragment(self, col: float, radius: float) -> Fibre:
        """A dermal fibre stopping below the DEJ with an epidermal piece just above it."""
        gap = self.clearance(radius)
        below = self.skin.on_dej(col) + [gap + self.um(0.0, 1.0), 0.0]
        above_col = col + self.rng.uniform(-2.0, 2.0)
        above = self.skin.on_dej(above_col) - [gap + self.um(0.0, 1.0), 0.0]
        piece = clip_path(walk(self.rng, above, -1, self.um(8, 30), self.drift()), self.skin,
                          below_surface=self.sc_px)
        return Fibre("fragment", (self.sink(below, self.drift(0.0, 0.3)), piece), radius,
                     np.empty((0, 2)), True)

    def make_epidermal_fragment(self, col: float, radius: float) -> Fibre:
        """An isolated piece of fibre inside the epidermis."""
        thick = float(self.skin.dej_at(col) - self.skin.surface_at(col)) - self.sc_px
        lift = self.clearance(radius) + self.rng.uniform(0.1, 0.5) * thick
        piece = walk(self.rng, self.skin.on_dej(col) - [lift, 0.0], -1, self.um(6, 25), self.drift())
        piece = clip_path(piece, self.skin, below_surface=self.sc_px)
        return Fibre("epidermal_fragment", (piece,), radius, np.empty((0, 2)), True)

    def make_along_boundary(self, col: float, radius: float, span: float) -> Fibre:
        """A fibre rising to just under the DEJ and running along it for ``span`` px.

        Its centreline keeps its radius + 1.1 px + 0–0.25 µm (±0.3 px of waviness) under
        the junction: at the default 0.5 µm/px about 0.8–1.7 µm, and no pixel of it touches
        the epidermis.
        """
        cols = np.arange(col, col + span, STEP / 2)
        slope = np.gradient(self.skin.dej)
        normal = np.hypot(1.0, np.interp(cols, np.arange(slope.size), slope))
        offset = radius + 0.6 + self.um(0.0, 0.25) + smooth_noise(self.rng, cols, (30, 90), 0.3) + 0.5
        along = np.column_stack([self.skin.dej_at(cols) + offset * normal, cols])
        tail = self.sink(along[0], -self.rng.uniform(0.2, 0.45))
        return Fibre("along_boundary", (np.concatenate([tail, along[1:]]),), radius, np.empty((0, 2)), True)

    def make_plexus(self, col: float, radius: float, run: float, depth: float) -> Fibre:
        """A dermal fibre roughly following the DEJ ``depth`` px below its smoothed course."""
        cols = np.arange(max(col, 0.0), min(col + run, self.skin.shape[1] - 1), STEP)
        course = ndi.gaussian_filter1d(self.skin.dej, 100.0 / self.px, mode="nearest")
        rows = np.interp(cols, np.arange(course.size), course) + depth
        rows = rows + smooth_noise(self.rng, cols, (60 / self.px, 300 / self.px), 8 / self.px)
        rows += max(0.0, 10.0 / self.px + radius - float(np.min(rows - self.skin.dej_at(cols))))
        path = clip_path(np.column_stack([rows, cols]), self.skin)
        return Fibre("dermal_only", (path,), radius, np.empty((0, 2)))


def first_consistent(make: Callable[[], Fibre | list[Fibre]], skin: Skin, tries: int = 6) -> list[Fibre]:
    """Call ``make`` until all fibres it returns are consistent; ``[]`` after ``tries``."""
    for _ in range(tries):
        made = make()
        fibres = made if isinstance(made, list) else [made]
        if all(is_consistent(f, skin) for f in fibres):
            return fibres
    return []


class Slots:
    """Columns taken by features at the DEJ, so that unrelated features keep apart."""

    def __init__(self, width: int, margin: float, pad: float) -> None:
        self.taken = np.zeros(width, bool)
        self.margin, self.pad = int(np.ceil(margin)), int(np.ceil(pad))

    def take(self, rng: np.random.Generator, span: float) -> float | None:
        """A random free left column for a feature ``span`` px wide (``None`` if full)."""
        width = self.taken.size
        starts = np.arange(self.margin, width - self.margin - int(np.ceil(span)))
        if starts.size == 0:
            return None
        used = np.concatenate([[0], np.cumsum(self.taken)])
        lo = np.clip(starts - self.pad, 0, width)
        hi = np.clip(starts + int(np.ceil(span)) + self.pad + 1, 0, width)
        free = starts[used[hi] == used[lo]]
        if free.size == 0:
            return None
        col = int(rng.choice(free))
        self.taken[max(col - self.pad, 0) : col + int(np.ceil(span)) + self.pad + 1] = True
        return float(col) + float(rng.uniform(0.0, 1.0))


HARD_CASES = (
    ("split_below", (2, 6), (2.5, 7.5)),
    ("close_pair", (0, 4), (2.5, 7.5)),
    ("branch_above", (0, 4), None),
    ("stops_short", (1, 4), None),
    ("fragment", (1, 7), None),
    ("epidermal_fragment", (1, 3), None),
    ("along_boundary", (1, 16), (15.0, 35.0)),
)
"""Hard cases per phantom: builder, how many (low, high exclusive), span along the DEJ in µm."""


def place_fibres(
    rng: np.random.Generator, skin: Skin, pixel_size_um: float, sc_px: float,
    n_fibres: int | None, hard_cases: bool,
) -> list[Fibre]:
    """All fibres of one phantom: hard cases first, then ordinary crossings, then the plexus."""
    b = FibreBuilder(rng, skin, pixel_size_um, sc_px)
    plan: list[tuple[float, Callable[[float], Fibre | list[Fibre]]]] = []
    for name, how_many, span_um in HARD_CASES if hard_cases else ():
        for _ in range(rng.integers(*how_many)):
            make = partial(getattr(b, f"make_{name}"), radius=b.radius(0.35, 0.75))
            span = 0.0 if span_um is None else b.um(*span_um)
            plan.append((span, make if span_um is None else partial(make, span=span)))
    n = int(rng.integers(0, 7 if hard_cases else 21)) if n_fibres is None else n_fibres
    plan += [(0.0, partial(b.make_crossing, radius=b.radius(0.35, 0.75))) for _ in range(n)]

    slots = Slots(skin.shape[1], margin=10.0 / pixel_size_um, pad=6.0 / pixel_size_um)
    fibres: list[Fibre] = []
    for span, make in plan:
        col = slots.take(rng, span)
        if col is not None:
            fibres += first_consistent(partial(make, col), skin)
    width = skin.shape[1]
    for depth_um, count in ((15.0, rng.integers(2, 5)), (120.0, rng.integers(0, 3))):
        for _ in range(count):
            make = partial(b.make_plexus, rng.uniform(-0.3, 0.7) * width, b.radius(0.6, 0.95),
                           rng.uniform(0.3, 1.0) * width, depth_um / pixel_size_um + b.um(0, 50))
            fibres += first_consistent(make, skin)
    return fibres


def render_fibres(
    fibres: list[Fibre], shape: tuple[int, int], rng: np.random.Generator, pixel_size_um: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise fibres.

    Returns
    -------
    nerves
        bool mask: pixels within ``radius_px`` of a centreline pixel.
    fibre_labels
        uint16, index into ``fibres`` plus one for each nerve pixel (nearest fibre wins).
    stain
        float32 stain amount in [0, 1]: a soft profile across the fibre, beaded along it.
    """
    points, owner, radius, amount = [], [], [], []
    for i, fibre in enumerate(fibres):
        strength = rng.uniform(0.7, 1.0)
        for path in fibre.paths:
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
            beads = 0.8 + smooth_noise(rng, arc, (4.0 / pixel_size_um, 12.0 / pixel_size_um), 0.2)
            points.append(path)
            owner.append(np.full(len(path), i))
            radius.append(np.full(len(path), fibre.radius_px))
            amount.append(strength * beads)
    if not points:
        return np.zeros(shape, bool), np.zeros(shape, np.uint16), np.zeros(shape, np.float32)
    rc = np.rint(np.concatenate(points)).astype(np.intp)
    rc = np.clip(rc, 0, np.array(shape) - 1)
    centre = np.full(shape, -1, np.int32)
    centre[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    dist, (ir, ic) = ndi.distance_transform_edt(centre < 0, return_indices=True)
    near = centre[ir, ic]
    r = np.concatenate(radius)[near]
    nerves = dist <= r
    labels = np.where(nerves, np.concatenate(owner)[near] + 1, 0).astype(np.uint16)
    profile = np.exp(-0.5 * (dist / (0.8 * r + 0.4)) ** 2)
    stain = (np.concatenate(amount)[near] * profile).astype(np.float32)
    return nerves, labels, stain
