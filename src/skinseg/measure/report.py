"""A person-readable report of an epidermis measurement: ``thickness.png``, summary lines.

``thickness.png`` shows the en-face thickness map ``(n_bscans, width)`` in µm with a colour
bar (for a single B-scan: thickness along the B-scan) beside a histogram of the thickness
with its mean and median marked. The drawing functions also serve the napari widget, so
the plugin and the files show the same colours for the same µm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skinseg.figures import new_figure, save_png
from skinseg.measure.summary import write_measurement

if TYPE_CHECKING:
    from skinseg.measure.thickness import EpidermisMeasurement

COLORMAP = "viridis"
"""Colormap of thickness maps (matplotlib and napari both know it by this name)."""

RANGE_PERCENTILES = (2.0, 98.0)
"""Thickness percentiles spanned by the colour range, so a few outliers do not wash it out."""

SUMMARY_STATS = (
    ("mean", "thickness_mean_um"),
    ("SD", "thickness_sd_um"),
    ("median", "thickness_median_um"),
    ("P5", "thickness_p5_um"),
    ("P95", "thickness_p95_um"),
    ("min", "thickness_min_um"),
    ("max", "thickness_max_um"),
)
"""Row name → summary key of the thickness statistics in µm, in display order."""

THICKNESS_LABEL = "epidermal thickness (µm)"


def colour_range(values_um: np.ndarray) -> tuple[float, float]:
    """Colour range (µm) of a thickness map: its :data:`RANGE_PERCENTILES`, never empty.

    Returns ``(0, 1)`` when nothing is measured, and widens a single value by ±0.5 µm.
    """
    v = np.asarray(values_um, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, RANGE_PERCENTILES))
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-6 else (lo, hi)


def _fmt(x: Any, unit: str = " µm") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1f}{unit}"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, formatted value) rows: the thickness statistics in µm, coverage and n."""
    rows = [(name, _fmt(summary[key])) for name, key in SUMMARY_STATS]
    rows.append(("coverage", _fmt(100.0 * summary["coverage"], " %")))
    rows.append(("n", f"{summary['n']} of {summary['n_ascans']} A-scans"))
    return rows


def headline(summary: dict[str, Any]) -> str:
    """One line: mean ± SD thickness in µm and coverage."""
    return (
        f"epidermal thickness {_fmt(summary['thickness_mean_um'], '')} ± "
        f"{_fmt(summary['thickness_sd_um'])}, coverage {_fmt(100.0 * summary['coverage'], ' %')} "
        f"({summary['n']} of {summary['n_ascans']} A-scans)"
    )


def draw_histogram(
    ax: Any, values_um: np.ndarray, clim: tuple[float, float], *, min_bin_um: float = 0.0, cmap: str = COLORMAP
) -> None:
    """Histogram of the measured thickness, bars in the map's colours, mean and median marked.

    Parameters
    ----------
    ax
        Matplotlib axes to draw into (cleared first).
    values_um
        Thickness values in µm (NaN left out).
    clim
        Colour range in µm (as the map's), so each bar has its map colour.
    min_bin_um
        Narrowest bin (µm): thickness from labels moves in half-pixel steps, and bins
        narrower than a step leave empty gaps between the steps.
    cmap
        Colormap name.
    """
    import matplotlib

    ax.clear()
    v = np.asarray(values_um, dtype=np.float64)
    v = v[np.isfinite(v)]
    ax.set_xlabel(THICKNESS_LABEL)
    ax.set_ylabel("A-scans")
    if v.size == 0:
        ax.text(0.5, 0.5, "no A-scan measured", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = float(v.min()), float(v.max())
    width = max((hi - lo) / 40.0, min_bin_um, 1e-3)
    _, edges, bars = ax.hist(v, bins=np.arange(lo - width / 2, hi + width, width))
    colours = matplotlib.colormaps[cmap](matplotlib.colors.Normalize(*clim, clip=True)((edges[:-1] + edges[1:]) / 2))
    for bar, colour in zip(bars, colours):
        bar.set_facecolor(colour)
    mean, median = float(v.mean()), float(np.median(v))
    ax.axvline(mean, color="black", lw=1.5, label=f"mean {mean:.1f} µm")
    ax.axvline(median, color="crimson", lw=1.5, ls="--", label=f"median {median:.1f} µm")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


def draw_colour_strip(ax: Any, clim: tuple[float, float], cmap: str = COLORMAP) -> None:
    """The map's colour for each thickness along ``ax``'s x range: a legend under a histogram.

    Thickness beyond the colour range ``clim`` takes the end colours, as in the map.
    Share the x axis with the histogram (``sharex``) and call this after drawing it.
    """
    import matplotlib

    x0, x1 = ax.get_xlim()
    for image in list(ax.images):
        image.remove()
    x = np.linspace(x0, x1, 256)
    colours = matplotlib.colormaps[cmap](matplotlib.colors.Normalize(*clim, clip=True)(x))
    ax.imshow(colours[None], extent=(x0, x1, 0.0, 1.0), aspect="auto", interpolation="nearest")
    ax.set_xlim(x0, x1)
    ax.set_yticks([])
    ax.set_xlabel(THICKNESS_LABEL)


def histogram_bin_um(m: EpidermisMeasurement) -> float:
    """Narrowest useful histogram bin: the half-pixel step of thickness from labels, in µm."""
    return m.axial_um / 2.0


def draw_map(ax: Any, m: EpidermisMeasurement, clim: tuple[float, float], cmap: str = COLORMAP) -> Any:
    """En-face thickness map in µm on µm axes (unmeasured A-scans grey); returns the image."""
    import matplotlib

    n_bscans, width = m.thickness_um.shape
    spacing, lateral = m.map_pixel_size_um
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.6")
    ratio = n_bscans * spacing / (width * lateral)  # true proportions unless far too thin or tall
    image = ax.imshow(
        np.ma.masked_invalid(m.thickness_um), cmap=colours, vmin=clim[0], vmax=clim[1],
        extent=(0, width * lateral, n_bscans * spacing, 0), interpolation="nearest",
        aspect="equal" if 0.2 <= ratio <= 5 else "auto",
    )  # fmt: skip
    ax.set_xlabel("along the B-scan (µm)")
    ax.set_ylabel("across B-scans (µm)")
    return image


def draw_profile(ax: Any, m: EpidermisMeasurement) -> None:
    """Thickness along a single B-scan (gaps where not measured)."""
    width = m.thickness_um.shape[1]
    lateral = m.map_pixel_size_um[1]
    ax.plot((np.arange(width) + 0.5) * lateral, m.thickness_um[0], color="tab:blue", lw=1.2)
    ax.set_xlabel("along the B-scan (µm)")
    ax.set_ylabel(THICKNESS_LABEL)
    ax.grid(alpha=0.3)


def thickness_png(m: EpidermisMeasurement, path: str | Path, *, cmap: str = COLORMAP) -> Path:
    """Write ``thickness.png``: thickness map with colour bar (or profile) and histogram.

    Parameters
    ----------
    m
        The measurement.
    path
        PNG file to write (atomically).
    cmap
        Colormap of the map and the histogram bars.

    Returns
    -------
    The path written.
    """
    clim = colour_range(m.thickness_um)
    fig = new_figure(1400, 560)
    map_ax = fig.add_axes((0.06, 0.13, 0.50, 0.74))
    hist_ax = fig.add_axes((0.68, 0.13, 0.30, 0.74))
    if m.thickness_um.shape[0] > 1:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        image = draw_map(map_ax, m, clim, cmap)
        bar_ax = make_axes_locatable(map_ax).append_axes("right", size="3%", pad=0.1)
        fig.colorbar(image, cax=bar_ax).set_label(THICKNESS_LABEL)
        map_ax.set_title("thickness map (grey: not measured)", fontsize=10)
    else:
        draw_profile(map_ax, m)
        map_ax.set_title("thickness along the B-scan", fontsize=10)
    draw_histogram(hist_ax, m.thickness_um, clim, min_bin_um=histogram_bin_um(m), cmap=cmap)
    hist_ax.set_title("distribution", fontsize=10)
    fig.suptitle(f"{m.source}: {headline(m.summary)}", fontsize=11)
    return save_png(fig, path)


def write_report(m: EpidermisMeasurement, out_dir: str | Path, *, per_ascan: bool = False) -> dict[str, Path]:
    """Write the tables and JSON (:func:`~skinseg.measure.summary.write_measurement`) and
    ``thickness.png`` into ``out_dir``; returns file kind → path (``png`` for the figure)."""
    written = write_measurement(m, out_dir, per_ascan=per_ascan)
    written["png"] = thickness_png(m, Path(out_dir) / "thickness.png")
    return written
