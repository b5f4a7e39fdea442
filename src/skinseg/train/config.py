"""What a training run takes and reports: its configuration, per-epoch reports, progress
steps and result (:func:`skinseg.train.engine.train`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from skinseg.models.files import ModelInfo
from skinseg.train.augment import Augmentation


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes
    ----------
    epochs, batch_size, patch
        Most epochs to run, patches per batch, patch ``(rows, cols)`` cropped per sample.
    steps_per_epoch
        Batches per epoch; default enough to draw every training slice once.
    learning_rate, weight_decay
        AdamW settings (seed papers: 1e-4 to fine-tune, weight decay 1e-3).
    schedule
        ``"plateau"`` (halve the rate when the validation loss stalls) or ``"cosine"``.
    patience, min_delta
        Early stopping: stop after ``patience`` epochs without the validation loss
        falling by more than ``min_delta``.
    class_weights
        ``"seed"`` (DEJ ×20, glass/gel ×10), ``"frequency"`` (median-frequency from the
        training labels), ``None`` (equal) or one weight per class.
    lambda_dice, lambda_ce
        Weights of the Dice and cross-entropy terms.
    dice_present_only
        Average the Dice term over the classes present in each batch's labels only; use
        it when the labels hold fewer classes than the model predicts (e.g. fine-tuning
        the 7-class built-in model on air/epidermis/dermis masks).
    weight_average
        Decay per batch of an exponential moving average of the weights (e.g. 0.99);
        the average, not the latest weights, is validated and saved (steadier
        boundaries from few training images). 0 (default): off.
    augmentation
        ``None``: the modality's default (OCT or RGB); else an :class:`Augmentation`.
    class_crops
        Fraction of patches centred near a random pixel of a class drawn uniformly
        among the non-background classes of the slice (thin layers and fibres get seen);
        the rest are cropped anywhere.
    seed, device, amp
        Random seed; ``"auto"`` (CUDA, then MPS, then CPU) or a torch device name;
        mixed precision (float16) on CUDA.
    compile
        Run the training steps through ``torch.compile`` (TorchInductor) on CPU or CUDA:
        epochs about 1.2× faster on a 2-core CPU, after 30–70 s of compiling, so for long
        runs. It needs a C++ compiler (CPU) or Triton (CUDA); where compiling fails,
        training warns and goes on uncompiled. Validation and saved files are unchanged.
    """

    epochs: int = 100
    batch_size: int = 8
    patch: tuple[int, int] = (256, 256)
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    schedule: str = "plateau"
    patience: int = 10
    min_delta: float = 0.0
    class_weights: str | tuple[float, ...] | None = "seed"
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    dice_present_only: bool = False
    weight_average: float = 0.0
    augmentation: Augmentation | None = None
    class_crops: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be at least 1")
        if not 0.0 <= self.weight_average < 1.0:
            raise ValueError(f"weight_average must be in [0, 1), not {self.weight_average}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass(frozen=True)
class EpochReport:
    """One epoch: losses, validation Dice per class name (NaN if absent), rate, time."""

    epoch: int
    train_loss: float
    val_loss: float
    val_dice: dict[str, float]
    learning_rate: float
    seconds: float
    improved: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, NaN as ``None``."""
        d = asdict(self)
        d["val_dice"] = {k: (None if math.isnan(v) else round(v, 5)) for k, v in self.val_dice.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochReport:
        dice = {k: (math.nan if v is None else float(v)) for k, v in d["val_dice"].items()}
        return cls(**{**d, "val_dice": dice})


class TrainStep(tuple):
    """A progress step ``(done, total, message)``; ``report`` is set at the end of an epoch."""

    report: EpochReport | None

    def __new__(cls, done: int, total: int, message: str, report: EpochReport | None = None) -> TrainStep:
        step = super().__new__(cls, (done, total, message))
        step.report = report
        return step


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the best model file, its network and the history."""

    path: Path
    info: ModelInfo
    network: torch.nn.Module
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = "epochs"
