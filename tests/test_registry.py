"""Model registry: built-in and user folders, names and paths, pickles refused."""

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.models import registry
from skinseg.models.files import ModelInfo, save_model
from skinseg.models.registry import list_models, resolve_model, user_model_dir

INFO = ModelInfo(
    name="tiny OCT", task="oct-layers", architecture="monai.UNet",
    arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [2, 4],
               "strides": [2]},
    in_channels=1, class_table=OCT_CLASSES,
    normalisation={"kind": "percentile", "low": 1, "high": 99.5},
)
NERVES = replace(
    INFO, name="tiny nerves", task="nerves", class_table=NERVE_CLASSES,
    arguments={**INFO.arguments, "out_channels": 2},
)


def write(folder: Path, name: str, info: ModelInfo = INFO) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return save_model(folder / f"{name}.safetensors", info.build(), info)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Empty built-in and user folders."""
    builtin, user = tmp_path / "builtin", tmp_path / "user"
    builtin.mkdir()
    monkeypatch.setattr(registry, "BUILTIN_DIR", builtin)
    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(user))
    return builtin, user


def test_user_model_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(tmp_path / "mine"))
    assert user_model_dir() == tmp_path / "mine"
    monkeypatch.delenv("SKINSEG_MODEL_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert user_model_dir() == tmp_path / "data" / "napari-skinseg" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_model_dir() == tmp_path / "home" / ".local" / "share" / "napari-skinseg" / "models"


def test_classical_and_builtin(folders):
    builtin, _ = folders
    assert resolve_model("classical").is_classical
    with pytest.raises(SkinsegInputError, match="no built-in model for 'oct-layers'"):
        resolve_model("builtin")
    write(builtin, "nerves", NERVES)
    write(builtin, "oct_layers")
    entry = resolve_model("builtin")
    assert (entry.name, entry.origin, entry.info.task) == ("oct_layers", "builtin", "oct-layers")
    assert resolve_model("builtin", task="nerves").name == "nerves"
    with pytest.raises(SkinsegInputError, match="classical method segments OCT layers only"):
        resolve_model("classical", task="nerves")


def test_names_and_paths(folders, tmp_path):
    _, user = folders
    write(user, "my_scans")
    entry = resolve_model("my_scans")
    assert (entry.origin, entry.path) == ("user", user / "my_scans.safetensors")
    assert entry.info.name == "tiny OCT"
    elsewhere = write(tmp_path / "anywhere", "other")
    for spec in (elsewhere, str(elsewhere)):
        entry = resolve_model(spec)
        assert (entry.name, entry.origin, entry.path) == ("other", "file", elsewhere)
    assert resolve_model(entry) is entry
    with pytest.raises(SkinsegInputError, match="Known models: classical, my_scans"):
        resolve_model("nonesuch")
    with pytest.raises(SkinsegInputError, match="no such model file"):
        resolve_model(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_pickles_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(SkinsegInputError, match="only loads .safetensors"):
        resolve_model(path)
    with pytest.raises(SkinsegInputError, match="only loads .safetensors"):
        resolve_model(str(tmp_path / f"never_written{suffix}"))


def test_model_for_another_task_refused(folders, tmp_path):
    path = write(tmp_path, "nerve_model", NERVES)
    with pytest.raises(SkinsegInputError, match="for 'nerves', not 'oct-layers'"):
        resolve_model(path)
    assert resolve_model(path, task=None).info.task == "nerves"


def test_list_models(folders):
    builtin, user = folders
    write(builtin, "oct_layers")
    write(builtin, "nerves", NERVES)
    write(user, "mine")
    (user / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.warns(UserWarning, match="broken.safetensors"):
        found = list_models()
    assert [(e.name, e.origin) for e in found] == [
        ("classical", "classical"), ("oct_layers", "builtin"), ("mine", "user")
    ]
    assert found[1].label == "oct_layers (builtin: tiny OCT)"
    with pytest.warns(UserWarning):
        assert [e.name for e in list_models("nerves")] == ["nerves"]
