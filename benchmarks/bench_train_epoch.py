"""Training speed on the CPU: compiled steps, and batches made in a background thread.

    python benchmarks/bench_train_epoch.py [--epochs 6] [--threads 2]

Trains the surface-aligned recipe (`skinseg train --recipe aligned`: 160 × 512 windows,
neighbour channels, UNet 12–192) on a phantom tomogram three times, side by side in one
run: as the recipe does (steps through `torch.compile`, the next batch cropped and
augmented in a background thread while the network trains on the current one); then
uncompiled; then uncompiled with the batches made in line (the engine's prefetching
swapped out). Prints the wall times, the time of the epochs after the first (which pays
for compiling), their ratios, and how the trainings' losses compare: the two uncompiled
ones must match exactly (one thread makes the batches, in order), the compiled one to
rounding (fused kernels).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from skinseg.classes import OCT_CLASSES
from skinseg.progress import run
from skinseg.synth.oct import oct_phantom
from skinseg.train import TrainConfig, new_model_info, slices_from_pairs, train
from skinseg.train.recipes import ALIGNED_INPUT, ALIGNED_UNET, aligned_config

PIXEL_UM = (10.0, 2.4, 10.0)


def _train(train_set, val_set, info, config) -> tuple[float, float, list[float]]:
    """Wall time, time of the epochs after the first, and training losses of one training."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = run(train(train_set, val_set, Path(folder) / "bench.safetensors", start=info, config=config))
        later = sum(r.seconds for r in result.history[1:])
        return time.perf_counter() - start, later, [r.train_loss for r in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    phantom = oct_phantom((24, 512, 512), seed=3, pixel_size_um=PIXEL_UM)
    train_set, val_set = (
        slices_from_pairs([(phantom.image[part], phantom.labels[part])], OCT_CLASSES,
                          pixel_size_um=PIXEL_UM[1:], **ALIGNED_INPUT)
        for part in (slice(0, 20), slice(20, 24))
    )
    config = aligned_config(epochs=args.epochs, steps_per_epoch=20, device="cpu")
    info = new_model_info(train_set, name="bench", task="oct-layers", arguments=dict(ALIGNED_UNET),
                          pixel_size_um=PIXEL_UM[1:])
    _train(train_set, val_set, info, TrainConfig(epochs=1, steps_per_epoch=2, device="cpu"))  # warm-up
    compiled = _train(train_set, val_set, info, config)
    eager = _train(train_set, val_set, info, replace(config, compile=False))
    with mock.patch("skinseg.train.engine._prefetched", lambda batches: batches):
        in_line = _train(train_set, val_set, info, replace(config, compile=False))
    print(f"{args.epochs} epochs of {config.steps_per_epoch} batches of {config.batch_size} × "
          f"{config.patch[0]} × {config.patch[1]}, validation included, {args.threads} torch thread(s)")
    print("                                         all epochs   after the first")
    for name, (wall, later, _) in (("compiled, batches in a background thread", compiled),
                                   ("uncompiled, batches in the background", eager),
                                   ("uncompiled, batches made in line", in_line)):
        print(f"{name:41s} {wall:8.1f} s {later:12.1f} s")
    print(f"compiled against uncompiled:  {eager[0] / compiled[0]:.2f} × all epochs, "
          f"{eager[1] / compiled[1]:.2f} × after the first")
    print(f"background batches against in line:  {in_line[0] / eager[0]:.2f} × all epochs")
    print(f"uncompiled losses the same either way: {eager[2] == in_line[2]}; compiled against "
          f"uncompiled: largest relative difference {np.max(np.abs(np.subtract(compiled[2], eager[2])) / eager[2]):.1e}")


if __name__ == "__main__":
    main()
