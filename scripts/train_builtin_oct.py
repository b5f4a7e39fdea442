"""Train the built-in OCT skin-layer model on phantoms only, reproducibly.

Run from the repository root (about 20 minutes on a 2-core CPU)::

    python scripts/train_builtin_oct.py [-o src/skinseg/models/builtin/oct_layers.safetensors]
        [--epochs 40] [--steps 20] [--threads 1] [--volumes 64] [--evaluate-only] [--real]
        [--architecture unet16|unet16x5|unet8] [--class-weights none|mild|seed|frequency]
        [--device cpu|cuda] [--minutes M] [--workers N] [--aligned]

Only phantoms (:func:`skinseg.synth.oct.oct_phantom`) are used: ../shared/data may not
be redistributed, so no shipped weights come from it. Each phantom draws its pixel size,
anatomy (surface depth, epidermis and stratum corneum thickness, rete ridges, tilt,
curvature, relief, glass and/or gel or neither) and look (layer contrast, attenuation,
speckle grain, display range, streaks, hairs, follicles) from its seed, so the network
meets far more variety than one device shows. Seeds: training 1000…, validation 5000…,
held-out test 9000… (never trained on). After training, the held-out figures (Dice per
class, surface and DEJ mean absolute error from the labels via
:mod:`skinseg.measure.boundaries`, raw and post-processed) are written into the model
file's ``training`` field. ``--real`` also scores the face-dev B-scans (if present) without
training on them, printing the figures only. ``--aligned`` trains the input of the
face-dev ``aligned`` recipe (``benchmarks/train_face_dev.py``): each B-scan flattened to
its classical skin surface, a window from 32 rows above it, the neighbouring B-scans as
channels; such a model is a phantom-pretrained start for fine-tuning on real scans.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from skinseg.classes import OCT_CLASSES
from skinseg.io.image_data import ImageData
from skinseg.measure.boundaries import dej_depth, surface_depth
from skinseg.measure.metrics import (
    boundary_mae, dice, dice_per_class, runs_per_column, thickness_correlation,
)
from skinseg.models.files import load_model, save_model
from skinseg.segment.engine import segment
from skinseg.synth.oct import FACE_DEV_PIXEL_SIZE_UM, OCTAnatomy, OCTLook, oct_phantom
from skinseg.train import ALIGNED_INPUT, ALIGNED_UNET, TrainConfig, new_model_info, slices_from_pairs, train

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src" / "skinseg" / "models" / "builtin" / "oct_layers.safetensors"
FACE = ROOT.parent / "shared" / "data" / "skin-oct-face-dev"
TRAIN_SEED, VAL_SEED, TEST_SEED = 1000, 5000, 9000
SHAPE = (3, 512, 384)  # B-scans per phantom volume, depth, width
TEST_SHAPE = (2, 512, 512)
BSCAN_PITCH_UM = 60.0  # B-scans of one volume this far apart: alike but not twins
EPIDERMIS, DEJ, DERMIS = (OCT_CLASSES.value_of(n) for n in ("epidermis", "DEJ", "dermis"))
KINDS = [(False, False), (True, True), (True, False), (False, True)]  # (glass, gel)
# "mild": the DEJ band (1–3 px) counts 3×, the thin glass and gel 2×, against "seed"'s
# 20× / 10×, which paints the band about five times too thick.
CLASS_WEIGHTS = {"none": None, "mild": (1.0, 2.0, 2.0, 1.0, 1.0, 3.0, 1.0), "seed": "seed",
                 "frequency": "frequency"}
ARCHITECTURES = {  # MONAI UNet arguments; benchmarks/bench_segment.py times both
    "unet16": {"spatial_dims": 2, "channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 2},
    "unet16x5": {"spatial_dims": 2, "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                 "num_res_units": 2},
    "unet8": ALIGNED_UNET | {"channels": [8, 16, 32, 64, 128]},  # the aligned recipe's, narrower
}


def random_phantom(seed: int, shape: tuple[int, int, int]):
    """A phantom whose pixel size, glass/gel, anatomy and look are drawn from ``seed``.

    Anatomy and look vary around the generator's defaults (tuned on real scans), so the
    variety follows the generator when its defaults are retuned.
    """
    rng = np.random.default_rng([seed, 77])
    u = rng.uniform
    a, look = OCTAnatomy(), OCTLook()
    axial, lateral = u(1.8, 6.0), u(3.0, 15.0)
    glass, gel = KINDS[rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])]
    gel_um, glass_um = a.gel_um * u(0.5, 2.5), a.glass_um * u(0.7, 2.5)
    above = (glass_um if glass else 0) + (gel_um if gel else 0)
    anatomy = replace(
        a, surface_um=above + u(10, 200) * axial, epidermis_um=a.epidermis_um * u(0.55, 1.9),
        epidermis_variation=a.epidermis_variation * u(0.5, 2.5),
        stratum_corneum_um=a.stratum_corneum_um * u(0.5, 2.5),
        rete_depth_um=a.rete_depth_um * u(0, 2), rete_spacing_um=a.rete_spacing_um * u(0.5, 1.7),
        rete_width_um=a.rete_width_um * u(0.5, 1.5), tilt=(u(-0.05, 0.05), u(-0.12, 0.12)),
        curvature_um=u(-50, 300), undulation_um=a.undulation_um * u(0, 2.5), gel_um=gel_um, glass_um=glass_um,
        hairs_per_mm=a.hairs_per_mm * u(0, 3), follicles_per_mm2=a.follicles_per_mm2 * u(0, 2),
    )
    epidermis_db = look.epidermis_db + u(-4, 4)
    look = replace(
        look, epidermis_db=epidermis_db,
        stratum_corneum_db=epidermis_db + (look.stratum_corneum_db - look.epidermis_db) * u(0.5, 1.4),
        papillary_db=epidermis_db + (look.papillary_db - look.epidermis_db) * u(0.4, 1.4),
        reticular_db=look.reticular_db + u(-4, 4), papillary_um=look.papillary_um * u(0.6, 1.6),
        texture_db=look.texture_db * u(0.5, 1.5), dej_transition_um=look.dej_transition_um * u(0.2, 1.4),
        attenuation_per_mm=look.attenuation_per_mm * u(0.5, 1.8), diffuse_db=look.diffuse_db + u(-3, 3),
        glass_db=look.glass_db + u(-8, 5), gel_db=look.gel_db * u(0.3, 1.7),
        streak_db=look.streak_db * u(0, 1.5),
        resolution_um=(look.resolution_um[0] * u(0.7, 1.8), look.resolution_um[1] * u(0.7, 2.0)),
        display_floor_db=look.display_floor_db + u(-4, 4),
        display_range_db=look.display_range_db * u(0.8, 1.2),
    )
    window = None if rng.random() < 0.5 else u(350, 700)
    with np.errstate(over="ignore"):  # a sharp DEJ ramp may overflow exp harmlessly (→ a step)
        return oct_phantom(shape, (BSCAN_PITCH_UM, axial, lateral), seed=seed, glass=glass, gel=gel,
                           anatomy=anatomy, look=look, tissue_window_um=window)


def default_phantom(seed: int, shape: tuple[int, int, int]):
    """The face-like default phantom: plain, glass + gel, glass, gel in turn (as eval_oct_real.py)."""
    glass, gel = KINDS[seed % 4]
    return oct_phantom(shape, seed=seed, glass=glass, gel=gel)


def predict(net: torch.nn.Module, info, image: np.ndarray, pixel_size_um) -> tuple[np.ndarray, np.ndarray]:
    """Labels without and with anatomical post-processing, through the inference engine."""
    model = (net, info)
    return tuple(segment(image, model, pixel_size_um=pixel_size_um, device="cpu", postprocess=post).labels
                 for post in (False, True))


def split_dej(labels: np.ndarray, dej: np.ndarray) -> np.ndarray:
    """Labels with the DEJ band given to the epidermis above ``dej`` and to the dermis below.

    The band is 1 to 3 px thick, so its own Dice measures sub-pixel position (the true band
    moved by 0.5 px scores 0.76, by 1 px 0.52), which the DEJ error already reports. Split
    at the DEJ, the epidermis and dermis Dice score the layers a user measures.
    """
    centres = np.arange(labels.shape[-2], dtype=np.float32)[:, None] + 0.5
    below = centres >= dej[..., None, :]
    return np.where(labels == DEJ, np.where(below, DERMIS, EPIDERMIS), labels).astype(labels.dtype)


def _pooled_dice(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Dice per class present in the truth, pooled over all images."""
    pred = np.concatenate([q.reshape(-1, q.shape[-1]) for q in preds])
    truth = np.concatenate([t.reshape(-1, t.shape[-1]) for t in truths])
    present = [int(c) for c in np.unique(truth) if c != 0]
    return {OCT_CLASSES.name_of(c): round(v, 4) for c, v in dice_per_class(pred, truth, present).items()}


def phantom_figures(net, info, phantoms) -> dict:
    """Dice per class present (pooled), also with the DEJ band split at the DEJ
    (``layer_dice``), and surface and DEJ MAE (px) vs the sub-pixel truth."""
    both = [predict(net, info, p.image, p.pixel_size_um) for p in phantoms]
    out = {}
    for kind, preds in zip(("raw", "postprocessed"), zip(*both)):
        out[kind] = {
            "dice": _pooled_dice(preds, [p.labels for p in phantoms]),
            "layer_dice": _pooled_dice([split_dej(q, dej_depth(q)) for q in preds],
                                       [split_dej(p.labels, p.dej_depth) for p in phantoms]),
            "surface_mae_px": round(float(np.mean([boundary_mae(surface_depth(q), p.surface_depth)
                                                   for q, p in zip(preds, phantoms)])), 3),
            "dej_mae_px": round(float(np.mean([boundary_mae(dej_depth(q), p.dej_depth)
                                               for q, p in zip(preds, phantoms)])), 3),
        }
    return out


def real_figures(net, info) -> None:
    """Face-dev B-scans (no training on them): epidermis Dice, surface/DEJ MAE, thickness r."""
    from skimage import io

    from skinseg.io.masks import band_mask_to_labels

    paths = sorted((FACE / "images").glob("*.pgm"))
    if not paths:
        print(f"no face-dev data under {FACE}; skipped")
        return
    image = np.stack([io.imread(p) for p in paths])
    truth = band_mask_to_labels(np.stack([io.imread(FACE / "masks" / f"{p.stem}.png") for p in paths]))
    t_surface, t_dej = surface_depth(truth), dej_depth(truth)
    for kind, pred in zip(("raw", "postprocessed"), predict(net, info, image, FACE_DEV_PIXEL_SIZE_UM)):
        epi = (pred >= 3) & (pred <= 5)  # stratum corneum + epidermis + DEJ
        surf, dej = surface_depth(pred), dej_depth(pred)
        rows = np.array([[dice(epi[i], truth[i] == 4), boundary_mae(surf[i], t_surface[i]),
                          boundary_mae(dej[i], t_dej[i]), boundary_mae(t_surface[i] + 30, t_dej[i]),
                          thickness_correlation(surf[i], dej[i], t_surface[i], t_dej[i])]
                         for i in range(len(paths))])
        m = np.nanmean(rows, axis=0)
        twice = [int((runs_per_column(mask) > 1).sum()) for mask in (pred == EPIDERMIS, pred >= DEJ)]
        print(f"face-dev {kind}: epidermis Dice {m[0]:.4f}, surface MAE {m[1]:.3f} px, DEJ MAE {m[2]:.3f} px "
              f"(rule surface+30: {m[3]:.3f} px), thickness r {m[4]:.3f} (mean of {len(paths)} B-scans); "
              f"A-scans with more than one epidermis / DEJ-or-dermis run: {twice[0]} / {twice[1]}")


def _training_pair(seed: int, bscans: int) -> tuple[ImageData, np.ndarray, str]:
    p = random_phantom(seed, SHAPE)
    return ImageData(p.image[:bscans], p.pixel_size_um), p.labels[:bscans], f"phantom {seed}"


def train_model(args: argparse.Namespace) -> None:
    """Make the phantom sets and train; the best network lands in ``args.output``.

    Training stops at early stopping, after ``--epochs`` or after ``--minutes`` (the best
    network so far is kept)."""
    started = time.perf_counter()
    train_seeds = list(range(TRAIN_SEED, TRAIN_SEED + args.volumes))
    val_seeds = list(range(VAL_SEED, VAL_SEED + args.val_volumes))
    with ProcessPoolExecutor(args.workers) as pool:
        pairs = list(pool.map(_training_pair, train_seeds, [SHAPE[0]] * len(train_seeds)))
        val = list(pool.map(_training_pair, val_seeds, [1] * len(val_seeds)))
    given = ALIGNED_INPUT if args.aligned else {}
    train_set, val_set = (slices_from_pairs(p, OCT_CLASSES, **given) for p in (pairs, val))
    print(f"{len(train_set)} training and {len(val_set)} validation B-scans made in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    name = "OCT skin layers (phantom-pretrained, aligned input)" if args.aligned else "OCT skin layers (built-in, phantom-trained)"
    info = new_model_info(train_set, name=name, task="oct-layers",
                          arguments=ARCHITECTURES[args.architecture], pixel_size_um=FACE_DEV_PIXEL_SIZE_UM[1:])
    patch = (ALIGNED_INPUT["surface_window"]["rows"], 256) if args.aligned else (256, 256)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, patch=patch,
                         steps_per_epoch=args.steps, learning_rate=args.lr, schedule="cosine", patience=args.patience,
                         class_weights=CLASS_WEIGHTS[args.class_weights], seed=0, device=args.device)
    data = {
        "kind": "OCT phantoms only (skinseg.synth.oct.oct_phantom, scripts/train_builtin_oct.py)",
        "train_seeds": [train_seeds[0], train_seeds[-1]], "validation_seeds": [val_seeds[0], val_seeds[-1]],
        "shape": list(SHAPE), "validation_shape": [1, *SHAPE[1:]], "bscan_pitch_um": BSCAN_PITCH_UM,
        "variety": "pixel size, anatomy, look and glass/gel drawn per seed (random_phantom)",
        "axial_um_range": [1.8, 6.0], "lateral_um_range": [3.0, 15.0],
        "input": given or "whole B-scans",
    }

    deadline = started + 60 * args.minutes
    work = train(train_set, val_set, args.output, start=info, config=config, data=data)
    with contextlib.closing(work):  # closing keeps the best network written so far
        for _, _, message in work:
            if "val loss" in message:
                print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)
            if time.perf_counter() > deadline:
                print("time limit reached: stopping, best network kept", flush=True)
                break
    print(f"trained in {time.perf_counter() - started:.0f} s")


def score_held_out(path: Path) -> None:
    """Score held-out phantoms (seeds never trained on) and keep the figures in the model file."""
    net, info = load_model(path)
    test_random = [random_phantom(s, TEST_SHAPE) for s in range(TEST_SEED, TEST_SEED + 8)]
    test_default = [default_phantom(s, TEST_SHAPE) for s in range(TEST_SEED + 1, TEST_SEED + 9)]
    held_out = {
        "seeds_random_variety": [TEST_SEED, TEST_SEED + 7],
        "seeds_default_look": [TEST_SEED + 1, TEST_SEED + 8], "shape": list(TEST_SHAPE),
        "random_variety": phantom_figures(net, info, test_random),
        "default_look": phantom_figures(net, info, test_default),
    }
    print("held-out phantoms:", held_out, flush=True)
    save_model(path, net, replace(info, training={**info.training, "held_out_phantoms": held_out}))
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=OUTPUT)
    ap.add_argument("--volumes", type=int, default=64, help="training phantom volumes")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=20, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--val-volumes", type=int, default=16, help="validation phantoms (one B-scan each)")
    ap.add_argument("--patience", type=int, default=12, help="early stopping patience (epochs)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="unet16")
    ap.add_argument("--class-weights", choices=sorted(CLASS_WEIGHTS), default="seed",
                    help="loss weights per class (TrainConfig.class_weights); 'seed' (DEJ x20, the "
                         "shipped model) paints the DEJ band about 5x too thick")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: fastest on a shared 2-core machine; fixes the sums' order)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (mixed precision on CUDA)")
    ap.add_argument("--minutes", type=float, default=float("inf"), help="stop training after this long")
    ap.add_argument("--workers", type=int, default=1, help="processes making the phantoms")
    ap.add_argument("--train-only", action="store_true", help="skip scoring the held-out phantoms")
    ap.add_argument("--aligned", action="store_true",
                    help="train on surface-flattened windows with neighbour channels (face-dev 'aligned' input)")
    ap.add_argument("--evaluate-only", action="store_true", help="score the existing model file")
    ap.add_argument("--real", action="store_true", help="also score ../shared/data/skin-oct-face-dev")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.evaluate_only:
        train_model(args)
    if args.train_only:
        return
    score_held_out(args.output)
    if args.real:
        real_figures(*load_model(args.output))


if __name__ == "__main__":
    sys.exit(main())
