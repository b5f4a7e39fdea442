"""Compare the OCT phantom with the real face-dev B-scans.

Writes ``docs/images/phantom_vs_real.png``: a phantom B-scan of the real scans' size and
its labels, then the mean depth profile aligned to the skin surface and the intensity
histogram, then the mean intensity in ±25 rows around the skin surface and around the DEJ
of every A-scan, real (all 60 B-scans, boundaries from the expert masks) against phantom
(boundaries from its truth). Prints the statistics behind it (aggregates only), and where
each rise (air → entry peak, dark epidermis → bright upper dermis) is half way up
relative to the boundary.

    python scripts/compare_phantom_real.py [--seed 3] [--phantoms 4] [--bscans 16]
        [--out PATH] [--with-real-bscan 31]

The phantom side is the mean over ``--phantoms`` phantoms (seeds ``--seed`` on) of
``--bscans`` B-scans each, so one phantom's anatomy does not decide the comparison; the
B-scan shown is from the first.

``--with-real-bscan N`` puts real B-scan ``N`` beside the phantom B-scan instead of the
labels (same size, same linear display of the 16-bit values). The face-dev data carry no
licence and must not be redistributed: write that figure outside the repository (e.g.
``--out /tmp/phantom_vs_real.png``) and never commit it.

Needs the real data in ``../shared/data/skin-oct-face-dev`` (beside the repository).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi
from skimage import io

from skinseg.classes import OCT_CLASSES
from skinseg.synth.oct import FACE_DEV_PIXEL_SIZE_UM, OCTAnatomy, oct_phantom

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "skin-oct-face-dev"
PROFILE_ROWS = np.arange(-60, 240)
ALIGN_ROWS = np.arange(-25, 25)
BINS = np.linspace(0, 65535, 129)
REAL_COLOUR, PHANTOM_COLOUR = (230, 85, 13), (49, 130, 189)


def load_real() -> tuple[np.ndarray, np.ndarray]:
    """Real B-scans ``(60, 512, 512)`` float32 and epidermis masks (bool)."""
    files = sorted((DATA / "images").glob("*.pgm"))
    images = np.stack([io.imread(f) for f in files]).astype(np.float32)
    masks = np.stack([io.imread(DATA / "masks" / f"{f.stem}.png") > 127 for f in files])
    return images, masks


def mask_boundaries(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface (top edge) and DEJ (bottom edge) rows of epidermis masks per A-scan."""
    depth = masks.shape[1]
    top = np.argmax(masks, axis=1).astype(np.float32)
    bottom = (depth - np.argmax(masks[:, ::-1, :], axis=1)).astype(np.float32)
    return top, bottom


def make_phantom(real_shape: tuple[int, int, int], surface_row: float, seed: int, n: int):
    """Phantom of the real B-scans' size with its surface at the same depth."""
    axial = FACE_DEV_PIXEL_SIZE_UM[1]
    anatomy = OCTAnatomy(surface_um=surface_row * axial)
    return oct_phantom(
        (n, *real_shape[1:]), seed=seed, anatomy=anatomy, tissue_window_um=205 * axial
    )


def surface_profile(images: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Mean intensity per row relative to the surface (``PROFILE_ROWS``)."""
    rel = np.arange(images.shape[1])[None, :, None] - np.round(surface)[:, None, :].astype(int)
    sums = ndi.sum_labels(images, rel, PROFILE_ROWS)
    counts = ndi.sum_labels(np.ones_like(images), rel, PROFILE_ROWS)
    return sums / np.maximum(counts, 1)


def aligned_profile(images: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Mean intensity ``ALIGN_ROWS`` rows from a boundary, over all A-scans.

    Sample ``k`` of an A-scan is its intensity at depth ``boundary + k + 0.5`` (linear
    interpolation between row centres), so with an integer boundary (a mask edge) it is
    row ``boundary + k``, the ``k``-th row below the boundary (negative: above it).
    Samples outside the image are left out.
    """
    n, depth, width = images.shape
    index = boundary[:, None, :] + ALIGN_ROWS[None, :, None]
    b = np.broadcast_to(np.arange(n)[:, None, None], index.shape)
    w = np.broadcast_to(np.arange(width), index.shape)
    values = ndi.map_coordinates(images, [b, np.clip(index, 0, depth - 1), w], order=1)
    inside = (index >= 0) & (index <= depth - 1)
    return (values * inside).sum(axis=(0, 2)) / np.maximum(inside.sum(axis=(0, 2)), 1)


def rise(profile: np.ndarray, after: int) -> dict[str, float]:
    """Where an aligned profile's rise to its peak (at or after row ``after``) is 10, 50, 90 %.

    The rise goes from the profile's minimum before the peak to the peak. Positions are
    depths relative to the boundary (px, positive below it), at the last crossing of each
    level before the peak; ``at boundary`` is how far up the rise the profile is at the
    boundary itself (depth 0, between samples -1 and 0).
    """
    peak = after - ALIGN_ROWS[0] + int(np.argmax(profile[after - ALIGN_ROWS[0] :]))
    low = float(profile[: peak + 1].min())
    level = (profile[: peak + 1] - low) / (profile[peak] - low)
    out = {}
    for q in (0.1, 0.5, 0.9):
        k = int(np.flatnonzero(level < q)[-1])  # last sample under q before the peak
        frac = (q - level[k]) / (level[k + 1] - level[k])
        out[f"{q:.0%}"] = float(ALIGN_ROWS[k] + frac + 0.5)
    out["width"] = out["90%"] - out["10%"]
    out["at boundary"] = float(np.interp(-0.5, ALIGN_ROWS[: peak + 1], level))
    return out


def statistics(images: np.ndarray, surface: np.ndarray, dej: np.ndarray) -> dict[str, float]:
    """Region means, speckle contrast and grain, neighbour correlation."""
    rows = np.arange(images.shape[1])[None, :, None]
    below_surface, below_dej = rows - surface[:, None, :], rows - dej[:, None, :]
    regions = {
        "air": below_surface < -15,
        "epidermis": (below_surface >= 6) & (below_dej < -4),
        "upper dermis": (below_dej >= 2) & (below_dej < 20),
        "deep dermis": (below_surface >= 150) & (below_surface < 190),
    }
    out = {f"mean {k}": float(images[m].mean()) for k, m in regions.items()}
    local = ndi.uniform_filter(images, (1, 15, 15))
    residual = images - local
    deep = regions["deep dermis"]
    out["speckle std/mean deep dermis"] = float(residual[deep].std() / images[deep].mean())
    for axis, name in ((1, "axial"), (2, "lateral")):
        shifted = np.roll(residual, -1, axis=axis)
        out[f"speckle lag-1 corr {name}"] = float(np.corrcoef(residual[deep], shifted[deep])[0, 1])
    pairs = [np.corrcoef(images[i].ravel(), images[i + 1].ravel())[0, 1] for i in range(len(images) - 1)]
    out["neighbour B-scan corr"] = float(np.mean(pairs))
    return out


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def line_plot(
    size: tuple[int, int], series: list[tuple[np.ndarray, np.ndarray, tuple]], title: str,
    xlabel: str, xrange: tuple[float, float], yrange: tuple[float, float], legend: list[str],
    vline: float | None = None,
) -> Image.Image:
    """A small line plot (axes, ticks, legend, optional grey vertical line) drawn with PIL."""
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 70, w - 15, 30, h - 45
    d.rectangle([left, top, right, bottom], outline="black")
    d.text((left, 6), title, fill="black", font=_font(15))
    d.text(((left + right) // 2 - 60, h - 22), xlabel, fill="black", font=_font(13))

    def to_px(x, y):
        px = left + (np.asarray(x) - xrange[0]) / (xrange[1] - xrange[0]) * (right - left)
        py = bottom - (np.asarray(y) - yrange[0]) / (yrange[1] - yrange[0]) * (bottom - top)
        return px, py

    for v in np.linspace(*xrange, 5):
        px, _ = to_px(v, yrange[0])
        d.line([(px, bottom), (px, bottom + 4)], fill="black")
        d.text((px - 14, bottom + 6), f"{v:.0f}", fill="black", font=_font(11))
    for v in np.linspace(*yrange, 5):
        _, py = to_px(xrange[0], v)
        d.line([(left - 4, py), (left, py)], fill="black")
        d.text((4, py - 7), f"{v:.3g}", fill="black", font=_font(11))
    if vline is not None:
        px, _ = to_px(vline, yrange[0])
        d.line([(px, top), (px, bottom)], fill=(150, 150, 150), width=1)
    for (x, y, colour), name, k in zip(series, legend, range(len(series))):
        px, py = to_px(x, np.clip(y, *yrange))
        d.line(list(zip(px.tolist(), py.tolist())), fill=colour, width=2)
        d.line([(right - 190, top + 14 + 18 * k), (right - 165, top + 14 + 18 * k)], fill=colour, width=3)
        d.text((right - 158, top + 6 + 18 * k), name, fill="black", font=_font(13))
    return img


def to_gray(image: np.ndarray) -> Image.Image:
    """The one display used for both B-scans: 16-bit values linearly to 8 bits."""
    return Image.fromarray((np.clip(image, 0, 65535) / 257.0).astype(np.uint8)).convert("RGB")


def to_colour(labels: np.ndarray) -> Image.Image:
    """Labels in the OCT class table's colours."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for value, rgba in OCT_CLASSES.colors_rgba().items():
        lut[value] = np.round(np.array(rgba[:3]) * 255)
    return Image.fromarray(lut[labels])


def compose(
    panels: list[tuple[Image.Image, str]], profiles, hists, aligned, phantom_label: str
) -> Image.Image:
    """Figure: two images on top, profile and histogram, then the two aligned profiles."""
    side = panels[0][0].width
    fig = Image.new("RGB", (2 * side + 30, side + 730), "white")
    d = ImageDraw.Draw(fig)
    for k, (img, name) in enumerate(panels):
        fig.paste(img, (10 + k * (side + 10), 30))
        d.text((10 + k * (side + 10), 6), name, fill="black", font=_font(16))
    legend = ["real (60 B-scans)", phantom_label]

    def pair(x, curves, title, xlabel, xrange, yrange, vline=None):
        series = [(x, c, colour) for c, colour in zip(curves, (REAL_COLOUR, PHANTOM_COLOUR))]
        return line_plot((side, 340), series, title, xlabel, xrange, yrange, legend, vline)

    centres = (BINS[:-1] + BINS[1:]) / 2
    plots = [
        pair(PROFILE_ROWS, profiles, "mean intensity vs depth below the surface",
             "rows below the skin surface", (PROFILE_ROWS[0], PROFILE_ROWS[-1]), (0, 60000)),
        pair(centres, hists, "intensity histogram (fraction of pixels)", "16-bit intensity",
             (0, 65535), (0, max(h.max() for h in hists) * 1.05)),
    ]
    for curves, name in zip(aligned, ("skin surface", "DEJ")):
        low, high = min(c.min() for c in curves), max(c.max() for c in curves)
        margin = 0.05 * (high - low)
        plots.append(pair(
            ALIGN_ROWS + 0.5, curves, f"mean intensity around the {name} (truth / mask edge)",
            f"depth relative to the {name} (px)", (ALIGN_ROWS[0], ALIGN_ROWS[-1] + 1),
            (low - margin, high + 6 * margin), vline=0.0,  # headroom for the legend
        ))
    for k, plot in enumerate(plots):
        fig.paste(plot, (10 + (k % 2) * (side + 10), side + 40 + (k // 2) * 350))
    return fig


def summary(images: np.ndarray, surface: np.ndarray, dej: np.ndarray, edge: np.ndarray) -> dict:
    """Statistics, histogram, depth profile (rows from ``edge``, the surface's row edge) and
    mean intensity around the surface and the DEJ of B-scans with known boundaries."""
    return {
        "stats": statistics(images, edge, dej),
        "hist": np.histogram(images, BINS)[0] / images.size,
        "profile": surface_profile(images, edge),
        "surface": aligned_profile(images, surface),
        "dej": aligned_profile(images, dej),
    }


def phantom_summary(real_shape: tuple[int, int, int], surface_row: float, seeds, n: int):
    """:func:`summary` averaged over phantoms of the given seeds, and the first phantom."""
    phantoms = [make_phantom(real_shape, surface_row, seed, n) for seed in seeds]
    parts = [
        # surface_depth - 0.5: the mask-like row edge that surface_profile rounds
        summary(ph.image.astype(np.float32), ph.surface_depth, ph.dej_depth, ph.surface_depth - 0.5)
        for ph in phantoms
    ]
    mean = {k: np.mean([part[k] for part in parts], axis=0) for k in parts[0] if k != "stats"}
    names = parts[0]["stats"]
    mean["stats"] = {k: float(np.mean([part["stats"][k] for part in parts])) for k in names}
    return mean, phantoms[0]


def report(real: dict, phantom: dict) -> None:
    """Print the statistics and where each rise is half way up, real against phantom."""
    print(f"{'statistic':34s} {'real':>10s} {'phantom':>10s}")
    for k in real["stats"]:
        print(f"{k:34s} {real['stats'][k]:10.3f} {phantom['stats'][k]:10.3f}")
    overlap = np.minimum(real["hist"], phantom["hist"]).sum()
    print(f"{'histogram overlap (sum of min)':34s} {overlap:10.3f}")
    difference = np.abs(real["profile"] - phantom["profile"]).mean()
    print(f"{'profile mean abs difference':34s} {difference:10.1f}")
    print("\nrise around each boundary: depth (px, + below it) of 10/50/90 % of the mean profile")
    print(f"{'':18s} {'10 %':>6s} {'50 %':>6s} {'90 %':>6s} {'width':>6s} {'at boundary':>12s}")
    for key, name, after in (("surface", "surface", ALIGN_ROWS[0]), ("dej", "DEJ", 0)):
        for who, part in (("real", real), ("phantom", phantom)):
            r = rise(part[key], after)
            print(
                f"{name + ' ' + who:18s} {r['10%']:6.2f} {r['50%']:6.2f} {r['90%']:6.2f} "
                f"{r['width']:6.2f} {r['at boundary']:11.0%}"
            )
        difference = np.abs(real[key] - phantom[key]).mean()
        print(f"{name + ' profiles mean abs difference':34s} {difference:10.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3, help="first phantom seed (B-scan shown)")
    parser.add_argument("--phantoms", type=int, default=4, help="phantoms (seeds from --seed on)")
    parser.add_argument("--bscans", type=int, default=16, help="B-scans per phantom")
    parser.add_argument(
        "--with-real-bscan", type=int, metavar="N",
        help="show real B-scan N beside the phantom (not for the repository: unlicensed data)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "phantom_vs_real.png")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 1
    images, masks = load_real()
    r_surface, r_dej = mask_boundaries(masks)
    real = summary(images, r_surface, r_dej, r_surface)
    seeds = range(args.seed, args.seed + args.phantoms)
    phantom, ph = phantom_summary(images.shape, float(np.median(r_surface)), seeds, args.bscans)
    report(real, phantom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    middle = len(ph.image) // 2
    panels = [(to_gray(ph.image[middle]), "phantom B-scan")]
    if args.with_real_bscan:
        panels.insert(0, (to_gray(images[args.with_real_bscan - 1]), "real face-dev B-scan"))
    else:
        panels.append((to_colour(ph.labels[middle]), "phantom labels (OCT class colours)"))
    pairs = [(real[k], phantom[k]) for k in ("profile", "hist", "surface", "dej")]
    label = f"phantom ({args.phantoms} x {args.bscans} B-scans)"
    compose(panels, *pairs[:2], pairs[2:], label).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
