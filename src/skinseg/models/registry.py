"""Where models come from: built-in, the user's model folder, or any path.

* **Built-in** models ship inside the package as ``skinseg/models/builtin/*.safetensors``
  (no download at run time); ``"builtin"`` names the built-in model of a task.
* **User** models live in ``$SKINSEG_MODEL_DIR`` if set, else
  ``$XDG_DATA_HOME/napari-skinseg/models`` (``~/.local/share/napari-skinseg/models``);
  a bare name such as ``"my_scans"`` finds ``my_scans.safetensors`` there.
* **Any path** to a ``.safetensors`` model file. Pickles (``.pt``, ``.pth``, ...) are
  refused (:mod:`skinseg.models.files`).
* ``"classical"`` is the zero-training OCT method (:mod:`skinseg.segment.classical`).

Tasks (``ModelInfo.task``): ``"oct-layers"``, ``"biopsy-tissue"`` (``TISSUE_CLASSES``)
and ``"biopsy-nerves"`` (``NERVE_CLASSES``). The biopsy tasks' zero-training methods
live in :mod:`skinseg.segment.biopsy` (``method="classical"``), not in these lists.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo, read_model_info

__all__ = [
    "BIOPSY_NERVES", "BIOPSY_TISSUE", "BUILTIN_DIR", "ModelEntry", "OCT_LAYERS", "list_models",
    "resolve_model", "user_model_dir",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
CLASSICAL = "classical"
BUILTIN = "builtin"
_SUFFIX = ".safetensors"
OCT_LAYERS = "oct-layers"
BIOPSY_TISSUE = "biopsy-tissue"
BIOPSY_NERVES = "biopsy-nerves"
_CLASSICAL_TASK = OCT_LAYERS


@dataclass(frozen=True)
class ModelEntry:
    """A model the user can choose.

    Attributes
    ----------
    name
        What to call it in lists: ``"classical"``, or the file name without suffix.
    origin
        ``"classical"``, ``"builtin"``, ``"user"`` (the user model folder) or ``"file"``.
    path
        The model file; None for the classical method.
    info
        The file's header; None for the classical method.
    """

    name: str
    origin: str
    path: Path | None = None
    info: ModelInfo | None = None

    @property
    def is_classical(self) -> bool:
        return self.origin == CLASSICAL

    @property
    def label(self) -> str:
        """A line for a drop-down: name, origin and the header's human name."""
        if self.is_classical:
            return "classical (no training)"
        return f"{self.name} ({self.origin}: {self.info.name})" if self.info else self.name


def user_model_dir() -> Path:
    """The user's model folder (it may not exist yet)."""
    if os.environ.get("SKINSEG_MODEL_DIR"):
        return Path(os.environ["SKINSEG_MODEL_DIR"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser() / "napari-skinseg" / "models"


def _entries(folder: Path, origin: str, task: str | None) -> list[ModelEntry]:
    """Readable model files of ``task`` in ``folder``; unreadable ones skipped with a warning."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{_SUFFIX}")):
        try:
            info = read_model_info(path)
        except SkinsegInputError as e:
            warnings.warn(f"skipping model file: {e}", stacklevel=3)
            continue
        if task is None or info.task == task:
            found.append(ModelEntry(path.stem, origin, path, info))
    return found


def list_models(task: str | None = _CLASSICAL_TASK) -> list[ModelEntry]:
    """Models for ``task`` (all tasks when None): classical, built-in, then user models."""
    classical = [ModelEntry(CLASSICAL, CLASSICAL)] if task in (None, _CLASSICAL_TASK) else []
    builtin = _entries(BUILTIN_DIR, BUILTIN, task)
    return classical + builtin + _entries(user_model_dir(), "user", task)


def _checked(entry: ModelEntry, task: str | None) -> ModelEntry:
    if task is not None and entry.info is not None and entry.info.task != task:
        raise SkinsegInputError(
            f"{entry.path}: this model is for '{entry.info.task}', not '{task}'; "
            f"choose a {task} model (see `list_models('{task}')`)."
        )
    return entry


def resolve_model(spec: str | Path | ModelEntry, task: str | None = _CLASSICAL_TASK) -> ModelEntry:
    """The model meant by ``spec``.

    Parameters
    ----------
    spec
        ``"classical"``; ``"builtin"`` (the built-in model of ``task``); the name of a
        built-in or user model (file name without ``.safetensors``); or a path to a
        ``.safetensors`` model file.
    task
        The workflow it must serve (``"oct-layers"``, ...); None accepts any.

    Raises
    ------
    SkinsegInputError
        Pickle files (``.pt`` ...), missing or unreadable files, unknown names, a model
        for another task, or no built-in model for ``task``.
    """
    if isinstance(spec, ModelEntry):
        return _checked(spec, task)
    text = str(spec)
    if text == CLASSICAL:
        if task not in (None, _CLASSICAL_TASK):
            raise SkinsegInputError(f"the classical method segments OCT layers only, not '{task}'.")
        return ModelEntry(CLASSICAL, CLASSICAL)
    if text == BUILTIN:
        builtin = _entries(BUILTIN_DIR, BUILTIN, task)
        if not builtin:
            raise SkinsegInputError(
                f"no built-in model for '{task}' in {BUILTIN_DIR}; the installation is incomplete. "
                "Reinstall napari-skinseg, or use the classical method or a model file."
            )
        return builtin[0]
    path = Path(text).expanduser()
    if isinstance(spec, Path) or path.suffix or len(path.parts) > 1:
        origin = BUILTIN if path.resolve().parent == BUILTIN_DIR else "file"
        return _checked(ModelEntry(path.stem, origin, path, read_model_info(path)), task)
    for folder, origin in ((user_model_dir(), "user"), (BUILTIN_DIR, BUILTIN)):
        candidate = folder / f"{text}{_SUFFIX}"
        if candidate.is_file():
            return _checked(ModelEntry(text, origin, candidate, read_model_info(candidate)), task)
    known = ", ".join(e.name for e in list_models(task)) or "none"
    raise SkinsegInputError(
        f"model {text!r}: no such file, and no model of that name in {user_model_dir()} or "
        f"{BUILTIN_DIR}. Known models: {known}."
    )
