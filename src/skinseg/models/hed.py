"""HED: holistically-nested edge detection, a multi-scale side-output network.

After Xie & Tu (2015), as used for nerve fibres in skin biopsies (seed 002): a VGG-like
trunk of convolution stages, each halving the resolution; every stage has a side output
(a 1×1 convolution to class scores, upsampled to the input size), and a 1×1 convolution
fuses the side outputs into the final scores. Thin fibres are seen at full resolution by
the first stages and in context by the deeper ones. Plain torch modules (MONAI has none).

The network returns the fused class logits ``(batch, out_channels, H, W)`` in both
training and evaluation mode, so the training engine's loss (soft Dice, optionally
cross-entropy) supervises the fused output; the side outputs learn through the fusion
(no separate deep supervision of each side output). Any input size works: side outputs
are interpolated back to the input's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HED"]


def _stage(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class HED(nn.Module):
    """HED with batch-normalised stages and a learned fusion of the side outputs.

    Parameters
    ----------
    in_channels
        Input channels (3 for RGB).
    out_channels
        Classes (2 for background / nerve, softmax over channels).
    channels
        Features per stage; stage ``i`` works at ``1 / 2**i`` of the input resolution.
    convs_per_stage
        3×3 convolutions (+ batch norm + ReLU) per stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 2,
        channels: Sequence[int] = (16, 32, 64, 128),
        convs_per_stage: int = 2,
    ) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(_stage(a, b, convs_per_stage) for a, b in zip(widths[:-1], widths[1:]))
        self.sides = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in channels)
        self.fuse = nn.Conv2d(out_channels * len(channels), out_channels, 1)

    def side_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Class scores of every stage, upsampled to the input size (finest first)."""
        size = x.shape[-2:]
        outputs = []
        for i, (stage, side) in enumerate(zip(self.stages, self.sides)):
            if i:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = stage(x)
            score = side(x)
            outputs.append(score if i == 0 else F.interpolate(score, size=size, mode="bilinear",
                                                              align_corners=False))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused class logits ``(batch, out_channels, H, W)``."""
        return self.fuse(torch.cat(self.side_outputs(x), dim=1))
