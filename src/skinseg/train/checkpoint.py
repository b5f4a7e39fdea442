"""Resume state of a training run: safetensors tensors + JSON metadata, never a pickle.

The state holds what the best model file does not: the latest weights, the AdamW
moments, the schedule and mixed-precision scaler settings, and the loop's counters and
history. It is written atomically after every epoch beside the model file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write
from skinseg.models.files import ModelInfo

_STATE_KEY = "skinseg-train-state"


def state_path(output: str | Path) -> Path:
    """Resume state beside a model file (``model.safetensors`` → ``model.state.safetensors``)."""
    return Path(output).with_suffix(".state.safetensors")


def save_state(
    path: Path,
    network: torch.nn.Module,
    parts: dict[str, Any],
    info: ModelInfo,
    progress: dict[str, Any],
) -> None:
    """Write the latest weights, the ``optimizer``/``scheduler``/``scaler`` in ``parts``
    (anything with ``state_dict``) and the loop's ``progress`` (JSON-ready) to ``path``."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    optim = parts["optimizer"].state_dict()
    for i, moments in optim["state"].items():
        for k, v in moments.items():
            tensors[f"optim/{i}/{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    meta = {
        "info": info.to_json(), "progress": progress, "param_groups": optim["param_groups"],
        "scheduler": parts["scheduler"].state_dict(), "scaler": parts["scaler"].state_dict(),
    }
    data = save(tensors, metadata={_STATE_KEY: json.dumps(meta, default=float)})
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def load_state(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[ModelInfo, dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(info, model weights, {"optimizer", "scheduler", "scaler"} states, progress)``.

    Raises
    ------
    SkinsegInputError
        When the file is missing or damaged.
    """
    if not path.is_file():
        raise SkinsegInputError(f"{path}: no resume state here; start a new training instead.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})[_STATE_KEY])
        tensors = load_file(str(path), device=str(device))
        info = ModelInfo.from_json(meta["info"])
    except Exception as e:  # noqa: BLE001 - any damage means the same to the user
        raise SkinsegInputError(f"{path}: damaged resume state ({e}); start a new training.") from e
    weights = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, i, name = k.split("/", 2)
            moments.setdefault(int(i), {})[name] = v
    parts = {
        "optimizer": {"state": moments, "param_groups": meta["param_groups"]},
        "scheduler": meta["scheduler"], "scaler": meta["scaler"],
    }
    return info, weights, parts, meta["progress"]
