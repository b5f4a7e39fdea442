"""Build networks by name from the arguments stored in a model file.

Only architectures listed in :data:`ARCHITECTURES` can be built: a model file names
one and its keyword arguments, never code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.networks import nets

from skinseg.models.hed import HED

ARCHITECTURES: dict[str, Callable[..., torch.nn.Module]] = {
    "monai.UNet": nets.UNet,
    "monai.BasicUNet": nets.BasicUNet,
    "monai.AttentionUnet": nets.AttentionUnet,
    "monai.FlexibleUNet": nets.FlexibleUNet,
    "hed": HED,  # skin-biopsy nerve fibres (seed 002); MONAI has no HED
}


def register_architecture(name: str, builder: Callable[..., torch.nn.Module]) -> None:
    """Make ``name`` buildable from model files (for networks MONAI lacks, e.g. HED)."""
    ARCHITECTURES[name] = builder


def build_network(architecture: str, arguments: dict[str, Any]) -> torch.nn.Module:
    """A fresh network of ``architecture`` built with ``arguments``."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}"
        ) from None
    return builder(**arguments)
