"""The two crossing rules behind :func:`skinseg.measure.crossings.find_crossings`.

Both work in pixels: the caller's parameters (µm) are divided by the pixel size here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

if TYPE_CHECKING:
    from skinseg.measure.crossings import CrossingParams

EIGHT = np.ones((3, 3), bool)


def clean_dermis(dermis: np.ndarray, min_fraction: float) -> np.ndarray:
    """Flip enclosed regions (of either class) smaller than ``min_fraction`` of the image.

    A region is enclosed when it does not touch the image border.
    """
    dermis = dermis.copy()
    limit = min_fraction * dermis.size
    for value in (False, True):  # holes in the dermis first, then dermis islands
        labels, n = ndi.label(dermis == value, structure=EIGHT)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        small = sizes < limit
        small[0] = False
        small[border] = False
        dermis[small[labels]] = not value
    return dermis


def edge_distances(first: np.ndarray, second: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre distance (px) from each pixel of one mask to the nearest pixel of the other.

    Returns two float arrays: on ``first`` the distance to ``second`` and on ``second``
    the distance to ``first``; inf elsewhere and beyond ``pad`` px of where the two meet
    (computed only in that box, for speed).
    """
    far = (np.full(first.shape, np.inf), np.full(first.shape, np.inf))
    meet = first & ndi.binary_dilation(second, EIGHT)
    if not meet.any():
        return far
    rows, cols = np.flatnonzero(meet.any(axis=1)), np.flatnonzero(meet.any(axis=0))
    margin = int(np.ceil(pad)) + 2
    box = (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
           slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))
    for out, inside, other in zip(far, (first, second), (second, first)):
        dist = ndi.distance_transform_edt(~other[box])
        out[box] = np.where(inside[box] & (dist <= pad), dist, np.inf)
    return far


def boundary_band(dermis: np.ndarray, width_px: float) -> np.ndarray:
    """Pixels whose centre lies within ``width_px / 2`` of the dermis edge, on either side.

    A straight edge gets ``width_px`` rows (rounded down to an even number, at least 2).
    """
    half = max(width_px, 2.0) / 2
    inner, outer = edge_distances(dermis, ~dermis, half + 1)
    return np.minimum(inner, outer) - 0.5 < half


def _window_sums(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    """Sum of ``mask`` in the ``(2 half + 1)``-square window around each point (clipped)."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    table[1:, 1:] = mask.cumsum(0).cumsum(1)
    r0, r1 = np.clip(rows - half, 0, mask.shape[0]), np.clip(rows + half + 1, 0, mask.shape[0])
    c0, c1 = np.clip(cols - half, 0, mask.shape[1]), np.clip(cols + half + 1, 0, mask.shape[1])
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def seed_rule(
    dermis_map: np.ndarray, nerves: np.ndarray, px: float, p: CrossingParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference study's rule; returns crossing points, cleaned dermis and band."""
    from sklearn.cluster import DBSCAN  # scikit-learn takes seconds to import; only this rule needs it

    smooth = ndi.gaussian_filter(dermis_map, p.smooth_sigma_um / px, mode="nearest")
    dermis = clean_dermis(smooth >= p.dermis_threshold, p.min_region_fraction)
    if dermis.all() or not dermis.any():
        return np.empty((0, 2)), dermis, np.zeros(dermis.shape, bool)
    band = boundary_band(dermis, p.band_width_um / px)
    pixels = np.argwhere(band & nerves)
    if len(pixels) < p.dbscan_min_samples:
        return np.empty((0, 2)), dermis, band
    cluster = DBSCAN(eps=p.dbscan_eps_um / px, min_samples=p.dbscan_min_samples).fit(pixels).labels_
    keep = cluster >= 0
    n = int(cluster.max()) + 1
    sizes = np.bincount(cluster[keep], minlength=n)
    points = np.column_stack([np.bincount(cluster[keep], pixels[keep, i], minlength=n) for i in (0, 1)])
    points = points / sizes[:, None]
    half = int(round(p.window_um / px)) // 2
    r, c = np.rint(points).astype(np.intp).T
    inner = _window_sums(nerves & dermis, r, c, half)
    outer = _window_sums(nerves & ~dermis, r, c, half)
    ok = (inner >= p.min_side_pixels) & (outer >= p.min_side_pixels)
    return points[ok], dermis, band


def _skeleton_graph(skeleton: np.ndarray) -> tuple[np.ndarray, sparse.csr_array]:
    """Skeleton pixel coordinates and their 8-neighbour graph (edge weight = distance)."""
    coords = np.argwhere(skeleton)
    index = np.full(skeleton.shape, -1, np.intp)
    index[coords[:, 0], coords[:, 1]] = np.arange(len(coords))
    padded = np.pad(index, 1, constant_values=-1)
    rows, cols, weights = [], [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        other = padded[1 + coords[:, 0] + dr, 1 + coords[:, 1] + dc]
        ok = other >= 0
        rows.append(np.flatnonzero(ok))
        cols.append(other[ok])
        weights.append(np.full(int(ok.sum()), np.hypot(dr, dc)))
    r, c, w = (np.concatenate(x) for x in (rows, cols, weights))
    n = len(coords)
    graph = sparse.coo_array((np.r_[w, w], (np.r_[r, c], np.r_[c, r])), shape=(n, n)).tocsr()
    return coords, graph


def _side_graph(graph: sparse.csr_array, on_side: np.ndarray) -> sparse.csr_array:
    """The graph with only edges between nodes on one side."""
    keep = sparse.diags_array(on_side.astype(float))
    return (keep @ graph @ keep).tocsr()


def _reaches(
    graph: sparse.csr_array, sources: np.ndarray, depth: np.ndarray, follow: float, reach: float
) -> bool:
    """True when a path of at most ``follow`` px from ``sources`` gets ``reach`` px deep."""
    dist = dijkstra(graph, indices=sources, min_only=True, limit=follow)
    return bool(np.max(depth[np.isfinite(dist)]) >= reach)


def skeleton_rule(
    dermis: np.ndarray, epidermis: np.ndarray, nerves: np.ndarray, px: float, p: CrossingParams
) -> tuple[np.ndarray, np.ndarray]:
    """Crossings where skeleton paths pass from dermis into epidermis; also the junction band.

    The skeleton pixels within ``junction_um`` of the boundary form junction pieces; a
    piece holding pixels of both sides is one candidate crossing (a fibre branching above
    the junction gives one piece, fibres splitting below give one piece per branch). It
    counts when the fibre, followed from the piece along the skeleton for ``follow_um``,
    gets ``reach_um`` deep on each side, which rejects fibres running along the boundary
    and tips that merely touch it. The point is the mean of the midpoints between
    neighbouring skeleton pixels on opposite sides.
    """
    near, follow, reach = max(p.junction_um / px, 1.5), p.follow_um / px, p.reach_um / px
    depth_d, depth_e = edge_distances(dermis, epidermis, max(near, reach))
    depth_d[dermis & np.isinf(depth_d)] = depth_e[epidermis & np.isinf(depth_e)] = reach
    band = (depth_d <= near) | (depth_e <= near)
    skeleton = skeletonize(nerves) & (dermis | epidermis)
    if not skeleton.any() or not band.any():
        return np.empty((0, 2)), band
    coords, graph = _skeleton_graph(skeleton)
    r, c = coords.T
    in_d = dermis[r, c]
    depth = np.where(in_d, depth_d[r, c], depth_e[r, c])
    pieces, _ = ndi.label(skeleton & band, structure=EIGHT)
    piece = pieces[r, c]
    edges = sparse.triu(graph).tocoo()
    a, b = edges.row, edges.col
    across = (in_d[a] != in_d[b]) & (piece[a] > 0) & (piece[a] == piece[b])
    a, b = a[across], b[across]
    graphs = {side: _side_graph(graph, in_d == side) for side in (True, False)}
    points = []
    for label in np.unique(piece[a]):
        mine = piece == label
        if all(_reaches(graphs[side], np.flatnonzero(mine & (in_d == side)), depth, follow, reach)
               for side in (True, False)):
            hit = piece[a] == label
            points.append(((coords[a[hit]] + coords[b[hit]]) / 2).mean(axis=0))
    return (np.array(points) if points else np.empty((0, 2))), band
