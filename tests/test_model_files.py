"""Model files: safetensors + JSON header round trip; pickles and foreign files refused."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo, load_model, read_model_info, save_model


def _info() -> ModelInfo:
    return ModelInfo(
        name="tiny", task="oct-layers", architecture="monai.UNet",
        arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [4, 8], "strides": [2]},
        in_channels=1, class_table=OCT_CLASSES, normalisation={"kind": "percentile", "low": 1, "high": 99.5},
        pixel_size_um=(2.4, 10.0), tile=(64, 64), training={"epochs": 0},
    )


def test_round_trip_gives_same_outputs(tmp_path):
    info = _info()
    net = info.build().eval()
    path = save_model(tmp_path / "m.safetensors", net, info)
    loaded, info2 = load_model(path)
    assert info2 == info
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert read_model_info(path).class_table == OCT_CLASSES


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_files_refused_without_loading(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(SkinsegInputError, match="only loads .safetensors"):
        load_model(path)


def test_foreign_and_damaged_files(tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(SkinsegInputError, match="without a skinseg header"):
        load_model(bare)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(SkinsegInputError, match="not a readable"):
        read_model_info(junk)
    with pytest.raises(SkinsegInputError, match="no such model file"):
        read_model_info(tmp_path / "missing.safetensors")


def test_weights_not_fitting_header(tmp_path):
    info = _info()
    path = save_model(tmp_path / "m.safetensors", info.build(), info)
    info.arguments = {**info.arguments, "channels": [8, 16]}
    save_model(tmp_path / "other.safetensors", _info().build(), info)  # header lies about the weights
    with pytest.raises(SkinsegInputError, match="do not fit"):
        load_model(tmp_path / "other.safetensors")
    assert load_model(path)[1].arguments["channels"] == [4, 8]
