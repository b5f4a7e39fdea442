"""PNG overviews a person can look at: a B-scan or image with labels and boundaries over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinseg.classes import ClassTable
from skinseg.io.atomic import atomic_write


def new_figure(width_px: int, height_px: int):
    """A matplotlib Figure of that size in pixels, drawn off-screen (no GUI backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    dpi = 100
    return Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)


def save_png(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG atomically."""
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return Path(path)


def overview_png(
    path: str | Path,
    image: np.ndarray,
    *,
    pixel_size_um: tuple[float, float],
    labels: np.ndarray | None = None,
    table: ClassTable | None = None,
    lines: dict[str, np.ndarray] | None = None,
    points: dict[str, np.ndarray] | None = None,
    title: str = "",
) -> Path:
    """Image (grey B-scan or RGB) with labels, per-column boundary lines and points.

    Parameters
    ----------
    image
        ``(rows, cols)`` grey or ``(rows, cols, 3)`` RGB.
    pixel_size_um
        (row, column) µm per pixel: axes are drawn in µm at the true aspect ratio.
    labels, table
        Labels drawn semi-transparent in the table's colours (background clear).
    lines
        Name → depth per column (pixels, edge convention); drawn over the image.
    points
        Name → ``(n, 2)`` (row, col) pixel positions, drawn as circles.
    """
    rows, cols = image.shape[:2]
    dy, dx = pixel_size_um
    extent = (0, cols * dx, rows * dy, 0)
    aspect_h = rows * dy / (cols * dx)
    fig = new_figure(1000, int(np.clip(1000 * aspect_h, 250, 1200)) + 80)
    ax = fig.add_axes((0.08, 0.12, 0.9, 0.8))
    grey = image.ndim == 2
    display = image if not grey else np.asarray(image, dtype=np.float32)
    vmin, vmax = (np.percentile(display, [1, 99.7]) if grey else (None, None))
    ax.imshow(display, cmap="gray" if grey else None, vmin=vmin, vmax=vmax, extent=extent, aspect="equal",
              interpolation="nearest")
    if labels is not None and table is not None:
        rgba = np.zeros(labels.shape + (4,), np.float32)
        for value, color in table.colors_rgba().items():
            rgba[labels == value] = (*color[:3], 0.35 if value else 0.0)
        ax.imshow(rgba, extent=extent, aspect="equal", interpolation="nearest")
    for name, depth in (lines or {}).items():
        ax.plot((np.arange(cols) + 0.5) * dx, np.asarray(depth) * dy, lw=1.2, label=name)
    for (name, pts), color in zip((points or {}).items(), ("yellow", "cyan", "magenta")):
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        ax.scatter((pts[:, 1] + 0.5) * dx, (pts[:, 0] + 0.5) * dy, s=60, facecolors="none", edgecolors=color,
                   linewidths=1.5, label=f"{name} (n={len(pts)})")
    if lines or points:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_xlabel("µm")
    ax.set_ylabel("µm")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)
