"""Skin surface and DEJ depth maps as triangle meshes, for 3-D display over the tomogram.

A depth map ``(n_bscans, width)`` in pixels (the convention of
:mod:`skinseg.measure.boundaries`: row ``r`` covers depths ``[r, r + 1)``) becomes a mesh
whose vertices are in the labels' pixel coordinates ``(bscan, depth, width)``, with pixel
centres at whole numbers — the coordinates napari gives the labels' voxels, so a Surface
layer with the labels' scale sits on the tomogram. A boundary at depth ``d`` lies at
``d - 0.5`` in those coordinates. A-scans without a boundary (NaN) are left out, and so is
every triangle touching one.
"""

from __future__ import annotations

import numpy as np

from skinseg.errors import SkinsegInputError


def depth_map_mesh(depth_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh through the A-scans of a depth map.

    Each 2 × 2 block of neighbouring A-scans gives two triangles; a triangle is kept
    when all three of its corners were measured.

    Parameters
    ----------
    depth_px
        ``(n_bscans, width)`` depth in pixels, NaN where not measured.

    Returns
    -------
    vertices
        ``(n_vertices, 3)`` float32 ``(bscan, depth, width)`` pixel coordinates of the
        measured A-scans only.
    faces
        ``(n_faces, 3)`` int32 indices into ``vertices``; empty for a single B-scan or
        when no three neighbouring A-scans were measured.

    Raises
    ------
    SkinsegInputError
        When ``depth_px`` is not 2-D.
    """
    depth = np.asarray(depth_px, dtype=np.float32)
    if depth.ndim != 2:
        raise SkinsegInputError(
            f"depth map must be (n_bscans, width); got shape {depth.shape}"
        )
    measured = np.isfinite(depth)
    bscan, col = np.nonzero(measured)
    vertices = np.column_stack([bscan, depth[bscan, col] - 0.5, col]).astype(np.float32)
    index = np.full(depth.shape, -1, dtype=np.int64)
    index[measured] = np.arange(vertices.shape[0])
    a, b = index[:-1, :-1], index[:-1, 1:]  # corners of each block: a b
    c, d = index[1:, :-1], index[1:, 1:]  #                           c d
    triangles = np.concatenate(
        [np.stack([a, b, c], axis=-1).reshape(-1, 3), np.stack([b, d, c], axis=-1).reshape(-1, 3)]
    )
    faces = triangles[(triangles >= 0).all(axis=1)].astype(np.int32)
    return vertices, faces
