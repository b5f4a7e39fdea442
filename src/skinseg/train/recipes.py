"""The best recipe found for OCT layers trained from scratch on real B-scans.

``benchmarks/train_face_dev.py`` compared recipes on the face-dev B-scans (docs/training.md):
the best, ``wide``, flattens every B-scan to the classical skin surface and keeps a
160-row window from 32 rows above it, gives the network the neighbouring B-scans as
channels, trains a MONAI UNet 12–192 on whole-width windows (steps compiled by
``torch.compile``) and saves a moving average of the weights. ``skinseg train --recipe
aligned`` and the benchmark both take it from here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from skinseg.train.config import TrainConfig

ALIGNED_INPUT: dict[str, Any] = {"neighbours": 1, "surface_window": {"above": 32, "rows": 160}}
"""Input of the recipe: neighbour channels each side, and the surface window."""

ALIGNED_UNET: dict[str, Any] = {
    "spatial_dims": 2, "channels": [12, 24, 48, 96, 192], "strides": [2, 2, 2, 2],
    "num_res_units": 1, "norm": "batch",
}
"""MONAI UNet arguments of the recipe (in/out channels are added from the slices)."""


def aligned_config(**changes: Any) -> TrainConfig:
    """The recipe's :class:`TrainConfig` (150 epochs of 160 × 512 windows, batch 2,
    learning rate 2e-3 on a cosine schedule, class weights from frequencies, weight
    average 0.995, compiled steps), with ``changes`` applied."""
    config = TrainConfig(
        epochs=150, batch_size=2, patch=(160, 512), learning_rate=2e-3, schedule="cosine",
        patience=100, class_weights="frequency", class_crops=1.0, weight_average=0.995, compile=True,
    )
    return replace(config, **changes)
