"""Compare the OCT phantom with the real face-dev B-scans.

Writes ``docs/images/phantom_vs_real.png``: a phantom B-scan of the real scans' size and
its labels, then the mean depth profile aligned to the skin surface and the intensity
histogram, real (all 60 B-scans) against phantom. Prints the statistics behind it.

    python scripts/compare_phantom_real.py [--seed 3] [--out PATH] [--with-real-bscan 31]

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
) -> Image.Image:
    """A small line plot (axes, ticks, legend) drawn with PIL."""
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
    for (x, y, colour), name, k in zip(series, legend, range(len(series))):
        px, py = to_px(x, np.clip(y, *yrange))
        d.line(list(zip(px.tolist(), py.tolist())), fill=colour, width=2)
        d.line([(right - 150, top + 14 + 18 * k), (right - 125, top + 14 + 18 * k)], fill=colour, width=3)
        d.text((right - 118, top + 6 + 18 * k), name, fill="black", font=_font(13))
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


def compose(panels: list[tuple[Image.Image, str]], profiles, hists) -> Image.Image:
    """Figure: two images on top, profile and histogram below."""
    side = panels[0][0].width
    fig = Image.new("RGB", (2 * side + 30, side + 380), "white")
    d = ImageDraw.Draw(fig)
    for k, (img, name) in enumerate(panels):
        fig.paste(img, (10 + k * (side + 10), 30))
        d.text((10 + k * (side + 10), 6), name, fill="black", font=_font(16))
    legend = ["real (60 B-scans)", "phantom"]
    (real_prof, ph_prof) = profiles
    prof = line_plot(
        (side, 340), [(PROFILE_ROWS, real_prof, REAL_COLOUR), (PROFILE_ROWS, ph_prof, PHANTOM_COLOUR)],
        "mean intensity vs depth below the surface", "rows below the skin surface",
        (PROFILE_ROWS[0], PROFILE_ROWS[-1]), (0, 60000), legend,
    )
    centres = (BINS[:-1] + BINS[1:]) / 2
    top = max(h.max() for h in hists) * 1.05
    hist = line_plot(
        (side, 340), [(centres, hists[0], REAL_COLOUR), (centres, hists[1], PHANTOM_COLOUR)],
        "intensity histogram (fraction of pixels)", "16-bit intensity", (0, 65535), (0, top), legend,
    )
    fig.paste(prof, (10, side + 40))
    fig.paste(hist, (20 + side, side + 40))
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
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
    ph = make_phantom(images.shape, float(np.median(r_surface)), args.seed, n=24)
    p_images = ph.image.astype(np.float32)
    p_surface, p_dej = ph.surface_depth - 0.5, ph.dej_depth  # mask-like row edges
    profiles = (surface_profile(images, r_surface), surface_profile(p_images, p_surface))
    hists = [np.histogram(x, BINS)[0] / x.size for x in (images, p_images)]
    real_stats = statistics(images, r_surface, r_dej)
    ph_stats = statistics(p_images, p_surface, p_dej)
    print(f"{'statistic':34s} {'real':>10s} {'phantom':>10s}")
    for k in real_stats:
        print(f"{k:34s} {real_stats[k]:10.3f} {ph_stats[k]:10.3f}")
    print(f"{'histogram overlap (sum of min)':34s} {np.minimum(*hists).sum():10.3f}")
    print(f"{'profile mean abs difference':34s} {np.abs(profiles[0] - profiles[1]).mean():10.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    middle = len(ph.image) // 2
    panels = [(to_gray(ph.image[middle]), "phantom B-scan")]
    if args.with_real_bscan:
        panels.insert(0, (to_gray(images[args.with_real_bscan - 1]), "real face-dev B-scan"))
    else:
        panels.append((to_colour(ph.labels[middle]), "phantom labels (OCT class colours)"))
    compose(panels, profiles, hists).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
