"""Accuracy of the classical OCT layer segmentation on real B-scans (and phantoms).

Run: ``python benchmarks/eval_oct_real.py [-o out/oct-other-device] [--per-bscan]
[--bscan-sigma S] [--phantoms N] [--speed]``.

- ``../shared/data/skin-oct-face-dev``: the 60 B-scans are stacked as one tomogram
  (``--per-bscan``: one B-scan at a time) and compared with the expert masks (top edge =
  surface, bottom edge = DEJ). Prints per B-scan and mean: epidermis Dice, surface and
  DEJ mean absolute error (px), the DEJ error of the rule "true surface + 30 px", the
  per-column thickness correlation, and the faults: A-scans (of 512) with more than one
  run of epidermis, and with more than one run of DEJ-or-dermis (a DEJ crossed twice).
  Pixel size: the data README's estimate (axial 3.3 µm × 370 / 512 optical path;
  10 µm across, as the OCT phantom assumes).
- ``../shared/data/oct-other-device/*.png`` (unlabelled, axial ≈ 5.75 µm): overlay PNGs
  with the surface (red) and DEJ (green) are written to ``-o``.
- ``--phantoms N``: N held-out phantoms (seeds 9001…, plain, glass+gel, glass, gel in
  turn): Dice of epidermis (stratum corneum merged) and dermis (DEJ band split at the
  true DEJ), surface and DEJ error.
- ``--speed``: seconds for a (128, 512, 512) phantom tomogram.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage import io

from skinseg.io.masks import band_mask_to_labels
from skinseg.measure.boundaries import dej_depth, surface_depth
from skinseg.measure.metrics import (
    boundary_mae,
    dice,
    pearson_r,
    runs_per_column,
    thickness_correlation,
)
from skinseg.segment.classical import ClassicalParams, ClassicalResult, segment_classical
from skinseg.synth.oct import oct_phantom

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FACE_PIXEL_UM = (1.0, 3.3 * 370 / 512, 10.0)
OTHER_DEVICE_PIXEL_UM = (5.75, 5.75)
RULE_PX = 30
EPIDERMIS, DEJ, DERMIS = 4, 5, 6


def load_face(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, B-scans ``(n, 512, 512)`` and truth labels from the face-dev masks."""
    paths = sorted((folder / "images").glob("*.pgm"))
    if not paths:
        raise SystemExit(f"no B-scans under {folder / 'images'}; is ../shared/data there?")
    images = np.stack([io.imread(p) for p in paths]).astype(np.uint16)
    masks = np.stack([io.imread(folder / "masks" / f"{p.stem}.png") for p in paths])
    return [p.stem for p in paths], images, band_mask_to_labels(masks, source=str(folder / "masks"))


def faults(labels: np.ndarray) -> tuple[int, int]:
    """A-scans with more than one epidermis run, and with more than one DEJ-or-dermis run."""
    return (
        int((runs_per_column(labels == EPIDERMIS) > 1).sum()),
        int((runs_per_column(labels >= DEJ) > 1).sum()),
    )


def format_row(row: tuple | np.ndarray) -> str:
    """Dice, four errors/correlations and two fault counts in fixed columns."""
    columns = [f"{row[0]:7.4f}", *(f"{v:7.3f}" for v in row[1:5]), *(f"{v:7g}" for v in row[5:])]
    return " ".join(columns)


def evaluate_face(folder: Path, params: ClassicalParams, per_bscan: bool) -> None:
    names, images, truth = load_face(folder)
    start = time.perf_counter()
    if per_bscan:
        found = [
            segment_classical(bscan, pixel_size_um=FACE_PIXEL_UM[1:], params=params)
            for bscan in images
        ]
        labels = np.stack([r.labels for r in found])
        surface, dej = np.stack([r.surface for r in found]), np.stack([r.dej for r in found])
    else:
        result = segment_classical(images, pixel_size_um=FACE_PIXEL_UM, params=params)
        labels, surface, dej = result.labels, result.surface, result.dej
    seconds = time.perf_counter() - start
    t_surface, t_dej = surface_depth(truth), dej_depth(truth)
    rows = []
    header = ("B-scan", "Dice", "surfMAE", "DEJ MAE", "+30 MAE", "thick r", "epi 2+", "DEJ 2+")
    print(" ".join(f"{h:>7}" for h in header))
    for i, name in enumerate(names):
        row = (
            dice(labels[i] == EPIDERMIS, truth[i] == EPIDERMIS),
            boundary_mae(surface[i], t_surface[i]),
            boundary_mae(dej[i], t_dej[i]),
            boundary_mae(t_surface[i] + RULE_PX, t_dej[i]),
            thickness_correlation(surface[i], dej[i], t_surface[i], t_dej[i]),
            *faults(labels[i]),
        )
        rows.append(row)
        print(f"{name:>7} {format_row(row)}")
    m = np.mean(np.array(rows, dtype=float), axis=0)
    print(f"{'mean':>7} {format_row(m)}")
    pooled = pearson_r(dej - surface, t_dej - t_surface)
    total = np.array(rows)[:, 5:].sum(axis=0).astype(int)
    print(
        f"{len(names)} B-scans in {seconds:.1f} s; pooled thickness r {pooled:.3f}; A-scans "
        f"with more than one run: epidermis {total[0]}, DEJ/dermis {total[1]}"
    )
    print(
        "targets: Dice >= 0.945, surface MAE <= 0.75 px, DEJ MAE <= 2.8 px and below the +30"
        " rule, thickness r >= 0.5, no A-scan with a layer found twice"
    )


def overlay(image: np.ndarray, result: ClassicalResult) -> np.ndarray:
    """8-bit RGB copy of a B-scan with the surface in red and the DEJ in green (2 px)."""
    grey = image.astype(np.float32)
    grey = np.clip(255 * (grey - grey.min()) / max(np.ptp(grey), 1e-6), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    columns = np.arange(image.shape[1])
    for depth, colour in ((result.surface, (255, 0, 0)), (result.dej, (0, 255, 0))):
        for offset in (0, 1):
            rows = np.clip(np.floor(depth).astype(int) - offset, 0, image.shape[0] - 1)
            rgb[rows, columns] = colour
    return rgb


def overlays_other_device(folder: Path, out: Path, params: ClassicalParams) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("*.png")):
        image = io.imread(path)
        result = segment_classical(image, pixel_size_um=OTHER_DEVICE_PIXEL_UM, params=params)
        target = out / f"{path.stem}_classical.png"
        io.imsave(target, overlay(image, result), check_contrast=False)
        thickness = np.median(result.thickness_um)
        print(f"{path.name}: median epidermis {thickness:.0f} µm (optical) -> {target}")


def evaluate_phantoms(count: int, params: ClassicalParams) -> None:
    kinds = ({}, {"glass": True, "gel": True}, {"glass": True}, {"gel": True})
    header = ("seed", "layers", "epi Dice", "derm Dice", "surfMAE", "DEJ MAE")
    print(" ".join(f"{h:>9}" for h in header))
    rows = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        ph = oct_phantom((8, 256, 256), seed=9001 + i, **kind)
        result = segment_classical(ph.image, pixel_size_um=ph.pixel_size_um, params=params)
        centres = np.arange(ph.image.shape[1])[None, :, None] + 0.5
        true_dermis = centres >= ph.dej_depth[:, None, :]
        true_epidermis = (centres >= ph.surface_depth[:, None, :]) & ~true_dermis
        row = (
            dice(result.labels == EPIDERMIS, true_epidermis),
            dice(result.labels == DERMIS, true_dermis),
            boundary_mae(result.surface, ph.surface_depth),
            boundary_mae(result.dej, ph.dej_depth),
        )
        rows.append(row)
        name = "+".join(kind) or "plain"
        print(f"{9001 + i:>9} {name:>9} {row[0]:9.4f} {row[1]:9.4f} {row[2]:9.3f} {row[3]:9.3f}")
    m = np.mean(rows, axis=0)
    print(f"{'mean':>9} {'':>9} {m[0]:9.4f} {m[1]:9.4f} {m[2]:9.3f} {m[3]:9.3f}")
    print("targets: Dice >= 0.95, surface and DEJ MAE <= 1 px")


def speed(params: ClassicalParams) -> None:
    ph = oct_phantom((128, 512, 512), seed=8000)
    start = time.perf_counter()
    segment_classical(ph.image, pixel_size_um=ph.pixel_size_um, params=params)
    seconds = time.perf_counter() - start
    print(f"(128, 512, 512) phantom: {seconds:.1f} s, {128 / seconds:.1f} B-scans/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "out" / "oct-other-device")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-bscan", action="store_true", help="segment face B-scans alone")
    parser.add_argument("--bscan-sigma", type=float, default=0.0, help="3-D consistency (B-scans)")
    parser.add_argument("--phantoms", type=int, default=0, help="also score N held-out phantoms")
    parser.add_argument("--speed", action="store_true", help="time a (128, 512, 512) tomogram")
    args = parser.parse_args()
    params = ClassicalParams(bscan_sigma=args.bscan_sigma)
    evaluate_face(args.data / "skin-oct-face-dev", params, args.per_bscan)
    overlays_other_device(args.data / "oct-other-device", args.out, params)
    if args.phantoms:
        evaluate_phantoms(args.phantoms, params)
    if args.speed:
        speed(params)


if __name__ == "__main__":
    main()
