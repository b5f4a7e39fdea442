"""Training speed on the CPU: batches made in a background thread against in line.

    python benchmarks/bench_train_epoch.py [--epochs 4] [--threads 2]

Trains the surface-aligned recipe (`skinseg train --recipe aligned`: 160 × 512 windows,
neighbour channels, UNet 12–192) on a phantom tomogram twice, side by side in one run: as
the engine does, the next batch cropped and augmented in a background thread while the
network trains on the current one; then with the batches made in line (the engine's
prefetching swapped out). Prints the epoch times, their ratio, and whether both trainings
went through the same losses (they must: one thread makes the batches, in order).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from skinseg.classes import OCT_CLASSES
from skinseg.progress import run
from skinseg.synth.oct import oct_phantom
from skinseg.train import TrainConfig, new_model_info, slices_from_pairs, train
from skinseg.train.recipes import ALIGNED_INPUT, ALIGNED_UNET, aligned_config

PIXEL_UM = (10.0, 2.4, 10.0)


def _train(train_set, val_set, info, config) -> tuple[float, list[float]]:
    """Wall time and training losses of one training."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = run(train(train_set, val_set, Path(folder) / "bench.safetensors", start=info, config=config))
        return time.perf_counter() - start, [r.train_loss for r in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
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
    prefetched, losses = _train(train_set, val_set, info, config)
    with mock.patch("skinseg.train.engine._prefetched", lambda batches: batches):
        in_line, losses_in_line = _train(train_set, val_set, info, config)
    print(f"{args.epochs} epochs of {config.steps_per_epoch} batches of {config.batch_size} × "
          f"{config.patch[0]} × {config.patch[1]}, validation included, {args.threads} torch thread(s)")
    print(f"batches made in a background thread  {prefetched:6.1f} s")
    print(f"batches made in line                 {in_line:6.1f} s")
    print(f"speed-up                             {in_line / prefetched:6.2f} ×")
    print(f"same losses: {losses == losses_in_line}")


if __name__ == "__main__":
    main()
