"""Draw docs/images/biopsy_phantom.png: both stains of one phantom, true crossings marked.

Run from the repository root: ``python scripts/show_biopsy_phantom.py [--seed N]``.
Top: brightfield (DAB) and fluorescent variants of the same seed with the DEJ (dotted)
and the ground-truth crossings (rings). Bottom: close-ups of hard cases, nerve mask outlined in yellow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skinseg.synth.biopsy import BiopsyPhantom, biopsy_phantom  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "biopsy_phantom.png"
ZOOM_KINDS = ("split_below", "branch_above", "stops_short", "along_boundary", "fragment")
HALF = 60  # half size of a close-up, px


def _overlay(ax: plt.Axes, ph: BiopsyPhantom, ring: str) -> None:
    ax.plot(np.arange(ph.dej.size), ph.dej, ":", color="#00e0ff", lw=0.8)
    ax.scatter(ph.crossings[:, 1], ph.crossings[:, 0], s=60, facecolors="none", edgecolors=ring, lw=1.2)


def _close_up(ax: plt.Axes, ph: BiopsyPhantom, kind: str) -> None:
    fibre = next((f for f in ph.fibres if f.kind == kind), None)
    if fibre is None:
        ax.set_axis_off()
        return
    path = fibre.paths[-1]  # the branch, for branched kinds
    gap = np.abs(path[:, 0] - np.interp(path[:, 1], np.arange(ph.dej.size), ph.dej))
    centre = np.rint(path[np.argmin(gap)]).astype(int)
    r0, c0 = np.clip(centre - HALF, 0, np.array(ph.tissue.shape) - 2 * HALF)
    ax.imshow(ph.image, interpolation="nearest")
    _overlay(ax, ph, "red")
    ax.contour(ph.nerves, levels=[0.5], colors="yellow", linewidths=0.6)
    ax.set_xlim(c0, c0 + 2 * HALF)
    ax.set_ylim(r0 + 2 * HALF, r0)
    ax.set_title(f"{kind}: counts {fibre.n_crossings}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    dab = biopsy_phantom(seed=args.seed, stain="dab")
    fluo = biopsy_phantom(seed=args.seed, stain="fluorescent")

    fig = plt.figure(figsize=(12, 7.0), dpi=100, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.3, 1])
    for ax, (ph, ring) in zip(top.subplots(1, 2), ((dab, "red"), (fluo, "white"))):
        ax.imshow(ph.image)
        _overlay(ax, ph, ring)
        ax.set_title(f"{ph.stain}, seed {ph.seed}: {ph.count} crossings "
                     f"({ph.pixel_size_um} µm/px, DEJ {ph.dej_length_um:.0f} µm)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, kind in zip(bottom.subplots(1, len(ZOOM_KINDS)), ZOOM_KINDS):
        _close_up(ax, dab, kind)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
