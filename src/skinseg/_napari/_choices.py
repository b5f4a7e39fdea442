"""Choices shared by the widgets: devices, model lists that follow the model folders, layer names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox
from qtpy.QtCore import QEvent, QObject, Qt

from skinseg.models.registry import ModelEntry, list_models, resolve_model

MODEL_FILE = "model file…"
DEVICES = ["auto", "cpu", "cuda", "mps"]


def _key(key: Any) -> int:
    return int(getattr(key, "value", key))  # PyQt6 enums are not ints


STEP_KEYS = {_key(k) for k in (Qt.Key.Key_F4, Qt.Key.Key_Space, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp,
                               Qt.Key.Key_PageDown, Qt.Key.Key_Home, Qt.Key.Key_End)}  # fmt: skip
"""Keys with which a focused drop-down opens its list or steps to another model."""


def model_list(task: str) -> dict[str, Any]:
    """Drop-down label → :class:`ModelEntry` of the models for ``task`` (classical, built-in, user)."""
    return {entry.label: entry for entry in list_models(task)}


class ModelChoices:
    """A model drop-down's choices, read afresh each time magicgui asks for them.

    Pass it as a ComboBox's ``choices``: every ``reset_choices`` (napari calls it when layers
    change; :class:`ModelComboBox` when the user opens the list) lists the model folders again,
    so a model saved into the user model folder meanwhile appears. Model files added with
    :meth:`add_file` stay listed; ``MODEL_FILE`` comes last.

    Parameters
    ----------
    task
        The model task (``"oct-layers"``, ``"biopsy-tissue"``, ``"biopsy-nerves"``).
    read
        Label → method for ``task``; default :func:`model_list`.
    """

    def __init__(self, task: str, read: Callable[[str], dict[str, Any]] = model_list) -> None:
        self._task, self._read = task, read
        self._files: dict[str, ModelEntry] = {}
        self.models: dict[str, Any] = {}
        """Label → method, as of the last read."""

    def __call__(self, widget: Any = None) -> list[str]:
        listed = self._read(self._task)
        self.models = {**listed, **{k: v for k, v in self._files.items() if k not in listed}}
        return [*self.models, MODEL_FILE]

    def add_file(self, path: str | Path) -> str:
        """List the model file at ``path`` (unless listed already) and return its label.

        Raises :class:`~skinseg.errors.SkinsegInputError` when the file is not a model for the task.
        """
        self()
        path = Path(path).resolve()
        for label, entry in self.models.items():
            if isinstance(entry, ModelEntry) and entry.path and entry.path.resolve() == path:
                return label
        entry = resolve_model(path, task=self._task)
        self._files[entry.label] = self.models[entry.label] = entry
        return entry.label


class _ReadOnOpen(QObject):
    """Qt event filter: re-read a drop-down's choices just before a click or key opens or steps it."""

    def __init__(self, combo: ComboBox) -> None:
        super().__init__(combo.native)  # lives as long as the drop-down
        self._combo = combo

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress or (kind == QEvent.Type.KeyPress and _key(event.key()) in STEP_KEYS):
            self._combo.reset_choices()
        return False  # the drop-down then handles the event as usual


class ModelComboBox(ComboBox):
    """A drop-down of :class:`ModelChoices` that lists the model folders again whenever the
    user clicks it or steps through it by key, in their order (magicgui would append new
    entries after ``MODEL_FILE``), keeping the selection while it is still listed."""

    def __init__(self, choices: ModelChoices, label: str) -> None:
        super().__init__(choices=choices, label=label)
        self.native.installEventFilter(_ReadOnOpen(self))

    def reset_choices(self, *_: Any) -> None:
        names = self._default_choices(self)
        if list(self.choices) == names:
            return
        old = self.value
        with self.changed.blocked():
            self.native.clear()
            self.choices = names  # a list: the callable stays the default
            if old in names:
                self.value = old
        if self.value != old:
            self.changed.emit(self.value)


def unique_name(viewer: napari.viewer.Viewer, name: str) -> str:
    """``name``, or ``name [2]``, ``name [3]`` ... if a layer already has it."""
    existing = {layer.name for layer in viewer.layers}
    candidate, k = name, 2
    while candidate in existing:
        candidate, k = f"{name} [{k}]", k + 1
    return candidate
