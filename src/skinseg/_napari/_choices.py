"""Choices shared by the widgets: devices, the "model file…" entry, model lists, layer names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari

from skinseg.models.registry import ModelEntry, resolve_model

MODEL_FILE = "model file…"
DEVICES = ["auto", "cpu", "cuda", "mps"]


def with_model_file(models: dict[str, Any], path: str | Path, task: str) -> tuple[dict[str, Any], str]:
    """``models`` (drop-down label → method) with the model file at ``path`` added when it is
    not listed yet, and the label that selects it.

    Raises :class:`~skinseg.errors.SkinsegInputError` when the file is not a model for ``task``.
    """
    path = Path(path).resolve()
    for label, entry in models.items():
        if isinstance(entry, ModelEntry) and entry.path and entry.path.resolve() == path:
            return models, label
    entry = resolve_model(path, task=task)
    return {**models, entry.label: entry}, entry.label


def unique_name(viewer: napari.viewer.Viewer, name: str) -> str:
    """``name``, or ``name [2]``, ``name [3]`` ... if a layer already has it."""
    existing = {layer.name for layer in viewer.layers}
    candidate, k = name, 2
    while candidate in existing:
        candidate, k = f"{name} [{k}]", k + 1
    return candidate
