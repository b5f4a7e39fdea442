"""Segmentation loss: class-weighted cross-entropy plus MONAI soft Dice.

Thin classes need weight: in skin OCT the DEJ band is a few pixels thick and glass and
gel are rare, so cross-entropy alone learns to skip them. Two ways to weight:

- :func:`seed_class_weights`: the published U-Net on skin OCT (seed 001) weighted the DEJ
  ×20 and glass/glycerol (gel) ×10 against epidermis and dermis. That paper also saw the
  DEJ come out about twice as thick, the price of a high weight; the Dice term (seed 002)
  counteracts it by scoring overlap rather than pixel counts.
- :func:`frequency_class_weights`: median-frequency balancing from the training labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.losses import DiceLoss

from skinseg.classes import ClassTable

SEED_WEIGHTS: dict[str, float] = {"DEJ": 20.0, "glass": 10.0, "gel": 10.0}
"""Class weights by name from the skin-OCT U-Net paper; other classes weigh 1."""


def seed_class_weights(table: ClassTable) -> np.ndarray:
    """Weight per output channel of ``table``: :data:`SEED_WEIGHTS` by name, else 1."""
    return np.array([SEED_WEIGHTS.get(c.name, 1.0) for c in table.classes], dtype=np.float32)


def frequency_class_weights(counts: Sequence[int] | np.ndarray, max_weight: float = 20.0) -> np.ndarray:
    """Median-frequency weights ``median(f) / f_c`` from pixel counts per class.

    Classes absent from the counts get weight 1; weights are clipped to
    ``[1 / max_weight, max_weight]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    if not present.any():
        return np.ones(counts.shape, dtype=np.float32)
    freq = counts / counts.sum()
    weights = np.ones(counts.shape)
    weights[present] = np.median(freq[present]) / freq[present]
    return np.clip(weights, 1.0 / max_weight, max_weight).astype(np.float32)


class DiceCELoss(torch.nn.Module):
    """``lambda_ce`` × class-weighted cross-entropy + ``lambda_dice`` × MONAI soft Dice.

    Takes logits ``(batch, classes, H, W)`` and integer class indices ``(batch, 1, H, W)``.
    The weights act on the cross-entropy only (as in the seed paper): Dice already
    scores each class by its own overlap, and weighting it too would reward thick
    bands. Dice is pooled over the batch (``batch=True``), so a class missing from one
    patch does not make that patch's Dice meaningless.

    With ``present_only`` the Dice term averages only the classes present in the batch's
    labels. A class the labels never hold (fine-tuning a 7-class OCT model on
    air/epidermis/dermis masks) otherwise adds a Dice term near 1 that only vanishing
    probabilities can lower: it dominates the loss and makes the validation loss, which
    picks the best checkpoint, follow noise. Cross-entropy still penalises predicting it.
    """

    def __init__(
        self, weights: torch.Tensor | None, lambda_dice: float, lambda_ce: float,
        present_only: bool = False,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, batch=True, reduction="none")
        self.ce = torch.nn.CrossEntropyLoss(weight=weights)
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce
        self.present_only = present_only

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # losses in float32 under mixed precision
        classes = target.long()
        ce = self.ce(logits, classes[:, 0])
        dice = self.dice(logits, target).flatten()  # one term per class
        if self.present_only:
            dice = dice[torch.bincount(classes.flatten(), minlength=logits.shape[1]) > 0]
        return self.lambda_dice * dice.mean() + self.lambda_ce * ce


def segmentation_loss(
    weights: Sequence[float] | np.ndarray | None = None,
    *,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    present_only: bool = False,
) -> DiceCELoss:
    """Class-weighted cross-entropy + soft Dice on softmax outputs (:class:`DiceCELoss`).

    Parameters
    ----------
    weights
        Per-class cross-entropy weights (:func:`seed_class_weights`,
        :func:`frequency_class_weights`), or ``None`` for equal weights.
    lambda_dice, lambda_ce
        Weights of the two terms.
    present_only
        Dice over the classes present in each batch's labels only.
    """
    weight = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    return DiceCELoss(weight, lambda_dice, lambda_ce, present_only)
