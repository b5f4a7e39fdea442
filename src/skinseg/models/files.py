"""Model files: one ``.safetensors`` file, weights plus a JSON header (DESIGN.md).

The header (safetensors metadata key ``skinseg``) holds a :class:`ModelInfo`: the
architecture and its arguments, input channels, class table, intensity normalisation,
pixel size trained at, training summary and format version. Nothing is unpickled:
files that are not safetensors (``.pt``, ``.pth``, ``.ckpt``, pickles) are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write
from skinseg.models.builders import build_network

FORMAT_VERSION = 1
_HEADER_KEY = "skinseg"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".h5", ".hdf5")


@dataclass
class ModelInfo:
    """What a model file says about its network.

    Attributes
    ----------
    name
        Short human name, e.g. ``"OCT layers (built-in)"``.
    task
        Which workflow it serves: ``"oct-layers"``, ``"biopsy-tissue"``, ``"biopsy-nerves"``, ...
    architecture, arguments
        Builder name in :data:`skinseg.models.builders.ARCHITECTURES` and its kwargs.
    in_channels
        Input channels the network expects (e.g. 1 grey, 3 RGB, 3 for a B-scan with
        its two neighbours).
    class_table
        Classes the output channels predict, channel ``i`` = ``class_table.classes[i]``.
    normalisation
        How raw intensities become network input, e.g.
        ``{"kind": "percentile", "low": 1.0, "high": 99.5}``.
    pixel_size_um
        Pixel size (µm) of the training images, per spatial axis of a 2D input.
    tile
        Training/inference tile ``(rows, cols)``; larger inputs are tiled.
    input
        Extra input conventions, e.g. ``{"neighbours": 1}``.
    training
        Summary of how it was trained (data, epochs, best validation figures, history).
    version
        File format version.
    """

    name: str
    task: str
    architecture: str
    arguments: dict[str, Any]
    in_channels: int
    class_table: ClassTable
    normalisation: dict[str, Any]
    pixel_size_um: tuple[float, ...] | None = None
    tile: tuple[int, int] | None = None
    input: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        d["class_table"] = self.class_table.to_dict()
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        d = json.loads(text)
        d["class_table"] = ClassTable.from_dict(d["class_table"])
        for key in ("pixel_size_um", "tile"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def build(self) -> torch.nn.Module:
        """A fresh (untrained) network as described."""
        return build_network(self.architecture, self.arguments)


def _check_path(path: Path) -> None:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise SkinsegInputError(
            f"{path}: '{path.suffix}' model files are pickles, which can run code when loaded; "
            "skinseg only loads .safetensors model files. Convert the weights with "
            "safetensors.torch.save_file in a trusted environment."
        )
    if not path.is_file():
        raise SkinsegInputError(f"{path}: no such model file.")


def save_model(path: str | Path, network: torch.nn.Module, info: ModelInfo) -> Path:
    """Write ``network``'s weights and ``info`` to ``path`` (atomically)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    data = save(tensors, metadata={_HEADER_KEY: info.to_json()})
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def read_model_info(path: str | Path) -> ModelInfo:
    """The header of a model file, without loading the weights."""
    p = Path(path)
    _check_path(p)
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as fh:
            header = (fh.metadata() or {}).get(_HEADER_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise SkinsegInputError(f"{p}: not a readable .safetensors model file ({e}).") from e
    if header is None:
        raise SkinsegInputError(
            f"{p}: a safetensors file without a skinseg header; it does not say which network "
            "it holds. Use a model file written by skinseg (training or `skinseg train`)."
        )
    try:
        return ModelInfo.from_json(header)
    except (ValueError, TypeError, KeyError) as e:
        raise SkinsegInputError(f"{p}: damaged skinseg model header ({e}).") from e


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the network from the header and load its weights; returns (network, info)."""
    info = read_model_info(path)
    try:
        network = info.build()
    except (ValueError, TypeError) as e:
        raise SkinsegInputError(f"{path}: cannot rebuild the network it describes ({e}).") from e
    try:
        state = load_file(str(path), device=str(device))
        network.load_state_dict(state)
    except (SafetensorError, RuntimeError) as e:
        raise SkinsegInputError(f"{path}: weights do not fit the network in its header ({e}).") from e
    return network.to(device).eval(), info
