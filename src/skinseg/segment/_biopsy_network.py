"""Trained biopsy networks on whole RGB images: checks, normalisation, tiled inference."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo, load_model
from skinseg.models.registry import ModelEntry, resolve_model
from skinseg.segment._device import (
    cpu_threads, for_inference, inference_tile, logits, select_device, size_divisor,
)
from skinseg.segment.normalise import intensity_range, normalise

Model = str | Path | ModelEntry | tuple[torch.nn.Module, ModelInfo]
_SAME_SIZE = 0.01  # relative pixel-size difference below which the image is not resampled


def _load(model: Model, task: str) -> tuple[torch.nn.Module, ModelInfo, str]:
    """The network (a copy when the caller gave one), its header and a name."""
    if isinstance(model, tuple):
        return copy.deepcopy(model[0]), model[1], model[1].name
    entry = resolve_model(model, task=task)
    if entry.is_classical:
        raise SkinsegInputError(f"'classical' is handled by the classical method, not as a {task} model.")
    network, info = load_model(entry.path)
    return network, info, entry.name


def _check(info: ModelInfo, name: str, task: str, table: ClassTable) -> None:
    same = [(c.value, c.name) for c in info.class_table.classes] == [(c.value, c.name) for c in table.classes]
    if info.task != task or not same or info.in_channels != 3:
        raise SkinsegInputError(
            f"model {name!r} is a '{info.task}' model with {info.in_channels} input channel(s) and "
            f"classes {info.class_table.names}; {task} needs 3 (RGB) input channels and classes "
            f"{table.names}. Choose a {task} model."
        )


def _resampled(x: torch.Tensor, pixel_size_um: float, info: ModelInfo) -> torch.Tensor:
    """``x`` at the model's training pixel size (area-averaged down, bilinear up)."""
    if info.pixel_size_um is None:
        return x
    scale = pixel_size_um / float(info.pixel_size_um[-1])
    if abs(scale - 1.0) < _SAME_SIZE:
        return x
    size = [max(1, round(n * scale)) for n in x.shape[-2:]]
    return F.interpolate(x, size=size, mode="area" if scale < 1 else "bilinear",
                         **({} if scale < 1 else {"align_corners": False}))


def network_probabilities(
    rgb: np.ndarray, pixel_size_um: float, model: Model, task: str, table: ClassTable,
    device: Any = "auto",
) -> tuple[np.ndarray, str]:
    """Softmax ``(n_classes, H, W)`` float32 of a ``task`` model on an RGB uint8 image.

    The image is resampled to the pixel size the model was trained at (when it records
    one and it differs by more than 1 %), and the class scores back to the image's size.
    It runs whole when it fits the model's tile (or the model has none), else in
    overlapping tiles blended with Gaussian weights (MONAI ``sliding_window_inference``).
    Returns the probabilities and the model's name.
    """
    network, info, name = _load(model, task)
    _check(info, name, task, table)
    dev = select_device(device)
    network = for_inference(network, dev)
    channels = np.moveaxis(rgb, -1, 0)
    x = normalise(channels, info.normalisation, intensity_range(channels, info.normalisation))
    x = _resampled(torch.from_numpy(x)[None], pixel_size_um, info)
    with cpu_threads(dev):
        scores = logits(network, x, inference_tile(info), size_divisor(info), dev)
    if scores.shape[-2:] != rgb.shape[:2]:
        scores = F.interpolate(scores, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return torch.softmax(scores[0], dim=0).numpy(), name
