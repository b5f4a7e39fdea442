"""Train the biopsy tissue and nerve networks on phantoms only, through the training engine.

Run from the repository root, one network at a time (in the background on a shared CPU)::

    python scripts/train_biopsy.py tissue [-o biopsy_tissue.safetensors] [--minutes 20]
    python scripts/train_biopsy.py nerves [-o biopsy_nerves.safetensors] [--minutes 20]
        [--device auto|cpu|cuda] [--batch-size 8] [--steps 10] [--workers 1]

* ``tissue``: a MONAI UNet (five levels, batch norm, residual units; receptive field about
  a patch of 256 px = 512 µm, enough to tell pale deep dermis from the slide) on 3 RGB
  channels predicting ``TISSUE_CLASSES``, trained at 2 µm per pixel (images area-averaged 4× from the
  phantom's 0.5 µm): the epidermis is a layer 45–90 µm thick, and context matters more
  than detail. Inference resamples any image to 2 µm and the scores back.
* ``nerves``: :class:`skinseg.models.hed.HED` (side outputs fused) predicting
  ``NERVE_CLASSES`` at the phantom's 0.5 µm per pixel with soft Dice loss only (seed 002),
  patches centred on fibres most of the time.

Phantoms (:func:`skinseg.synth.biopsy.biopsy_phantom`) alternate DAB brightfield and
fluorescence. Seeds: training 20000…, engine validation 29000…; the held-out evaluation
(``benchmarks/eval_biopsy_pipeline.py``) uses seeds 100… and never overlaps. Training stops
after ``--minutes`` (the best network so far is kept) or at early stopping.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage.transform import downscale_local_mean

from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.models.registry import BIOPSY_NERVES, BIOPSY_TISSUE
from skinseg.synth.biopsy import biopsy_phantom
from skinseg.train import TrainConfig, new_model_info, slices_from_pairs, train

TRAIN_SEED, VAL_SEED = 20000, 29000
PHANTOM_PX = 0.5
TISSUE_FACTOR = 4  # tissue network works at 4 × 0.5 = 2 µm per pixel
SETUPS = {
    "tissue": dict(
        task=BIOPSY_TISSUE, table=TISSUE_CLASSES, shape=(1200, 1600), architecture="monai.UNet",
        arguments={"spatial_dims": 2, "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                   "num_res_units": 2, "norm": "batch"},
        pixel_size_um=PHANTOM_PX * TISSUE_FACTOR, tile=None, input={},
        config=dict(patch=(256, 256), class_weights=None, lambda_ce=1.0, lambda_dice=1.0, class_crops=0.5),
        name="biopsy tissue (phantom-trained UNet)",
    ),
    "nerves": dict(
        task=BIOPSY_NERVES, table=NERVE_CLASSES, shape=(800, 1024), architecture="hed",
        arguments={"channels": [8, 16, 32, 64], "convs_per_stage": 2},
        pixel_size_um=PHANTOM_PX, tile=(512, 512), input={"size_divisor": 8},
        config=dict(patch=(160, 160), class_weights=None, lambda_ce=0.0, lambda_dice=1.0,
                    class_crops=0.8),
        name="biopsy nerves (phantom-trained HED)",
    ),
}


def phantom_pairs(kind: str, seeds: range, workers: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """:func:`phantom_pair` for each seed, in ``workers`` processes."""
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(phantom_pair, [kind] * len(seeds), seeds))


def phantom_pair(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(image, labels, name) of one phantom, at the network's working pixel size."""
    stain = "dab" if seed % 2 == 0 else "fluorescent"
    p = biopsy_phantom(SETUPS[kind]["shape"], PHANTOM_PX, seed=seed, stain=stain)
    if kind == "nerves":
        return p.image, p.nerves, f"phantom {seed} {stain}"
    f = TISSUE_FACTOR
    image = downscale_local_mean(p.image.astype(np.float32), (f, f, 1)).round().astype(np.uint8)
    labels = p.tissue[f // 2::f, f // 2::f][: image.shape[0], : image.shape[1]]
    return image, labels, f"phantom {seed} {stain}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(SETUPS))
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--images", type=int, default=24, help="training phantoms")
    parser.add_argument("--val-images", type=int, default=4, help="validation phantoms")
    parser.add_argument("--minutes", type=float, default=20.0, help="stop after this long (best kept)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10, help="batches per epoch")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda (mixed precision on CUDA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="processes making the phantoms")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = SETUPS[args.kind]
    output = args.output or Path(f"biopsy_{args.kind}.safetensors")
    started = time.perf_counter()
    train_seeds = range(TRAIN_SEED, TRAIN_SEED + args.images)
    val_seeds = range(VAL_SEED, VAL_SEED + args.val_images)
    train_set = slices_from_pairs(phantom_pairs(args.kind, train_seeds, args.workers), setup["table"])
    val_set = slices_from_pairs(phantom_pairs(args.kind, val_seeds, args.workers), setup["table"])
    print(f"{len(train_set)} training, {len(val_set)} validation images in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    px = setup["pixel_size_um"]
    info = new_model_info(train_set, name=setup["name"], task=setup["task"], architecture=setup["architecture"],
                          arguments=setup["arguments"], pixel_size_um=(px, px), tile=setup["tile"])
    info = replace(info, input={**info.input, **setup["input"]})
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps, learning_rate=args.lr,
                         schedule="plateau", patience=15, seed=0, device=args.device,
                         batch_size=args.batch_size, **setup["config"])
    data = {"kind": "biopsy phantoms only (skinseg.synth.biopsy, scripts/train_biopsy.py)",
            "train_seeds": [train_seeds[0], train_seeds[-1]], "validation_seeds": [val_seeds[0], val_seeds[-1]],
            "stains": "dab (even seeds), fluorescent (odd seeds)", "phantom_shape": list(setup["shape"]),
            "phantom_pixel_size_um": PHANTOM_PX, "minutes_limit": args.minutes}
    work = train(train_set, val_set, output, start=info, config=config, data=data)
    deadline = started + 60 * args.minutes
    with contextlib.closing(work):  # closing keeps the best network written so far
        for step in work:
            if step.report is not None:
                r = step.report
                print(f"[{time.perf_counter() - started:6.0f} s] epoch {r.epoch}: train {r.train_loss:.4f} "
                      f"val {r.val_loss:.4f} dice {r.val_dice}{' *' if r.improved else ''}", flush=True)
            if time.perf_counter() > deadline:
                print("time limit reached: stopping, best network kept", flush=True)
                break
    print(f"{output}: {output.stat().st_size / 1e6:.2f} MB after {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
