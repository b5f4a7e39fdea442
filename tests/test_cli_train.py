"""``skinseg trainset add|info`` and ``skinseg train``, end to end with ``skinseg segment``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from skinseg import io
from skinseg.classes import OCT_CLASSES
from skinseg.cli import _train, build_parser, main
from skinseg.io.masks import band_mask_to_labels
from skinseg.models.files import read_model_info
from skinseg.train import TrainingSet

TINY = ["--from", "scratch", "--unet-channels", "4", "8", "--patch", "32", "32", "--batch-size", "2",
        "--val-fraction", "0.34", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "oct", "-o", str(out), "--shape", "3", "96", "48", "--seed", "5"]) == 0
    return out


@pytest.fixture(scope="module")
def trainset(phantom, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sets") / "set"
    args = ["trainset", "add", str(folder), str(phantom / "image.ome.tif"), "--labels", str(phantom / "labels.ome.tif")]
    assert main(args) == 0
    return folder


def test_trainset_add_and_info(trainset, phantom, capsys):
    truth = io.read_labels(phantom / "labels.ome.tif")
    assert main(["trainset", "info", str(trainset)]) == 0
    out = capsys.readouterr().out
    assert "3 annotated slice(s) in 1 pair(s)" in out
    epidermis = next(line for line in out.splitlines() if line.strip().startswith("epidermis"))
    assert f"{int((np.asarray(truth.data) == 4).sum()):,}" in epidermis
    size = " × ".join(f"{s:g}" for s in truth.pixel_size_um[1:])
    assert f"{size} µm" in out


def test_train_then_segment(trainset, phantom, tmp_path, capsys):
    model = tmp_path / "tiny.safetensors"
    assert main(["train", str(trainset), "-o", str(model), "--epochs", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: train loss" in out and "val Dice background" in out and "epoch 2:" in out
    info = read_model_info(model)
    assert info.task == "oct-layers" and info.class_table == OCT_CLASSES
    assert info.training["data"]["training_set"] == str(trainset.resolve())
    assert info.training["epochs_run"] == 2 and info.arguments["channels"] == [4, 8]
    labels_out = tmp_path / "seg.ome.tif"
    assert main(["segment", str(phantom / "image.ome.tif"), "-o", str(labels_out), "--method", str(model)]) == 0
    seg = io.read_labels(labels_out)
    assert seg.data.shape == (3, 96, 48) and seg.metadata["model"] == "tiny"
    assert set(np.unique(seg.data)) <= set(OCT_CLASSES.values)


def test_aligned_recipe_flattens_and_uses_neighbours(trainset, phantom, tmp_path, capsys):
    folder = tmp_path / "set1"
    image, labels = str(phantom / "image.ome.tif"), str(phantom / "labels.ome.tif")
    assert main(["trainset", "add", str(folder), image, "--labels", labels, "--context", "1"]) == 0
    model = tmp_path / "aligned.safetensors"
    tiny = [a for a in TINY if a not in ("--from", "scratch")]  # the recipe trains from scratch by itself
    assert main(["train", str(folder), "-o", str(model), "--recipe", "aligned", "--epochs", "1", *tiny]) == 0
    info = read_model_info(model)
    assert info.input == {"neighbours": 1, "surface_window": {"above": 32, "rows": 160}}
    assert info.in_channels == 3 and info.arguments["norm"] == "batch" and info.arguments["channels"] == [4, 8]
    config = info.training["config"]
    assert config["weight_average"] == 0.995 and config["learning_rate"] == 2e-3
    assert config["class_weights"] == "frequency" and config["patch"] == [32, 32] and config["epochs"] == 1 and config["compile"]
    out = tmp_path / "seg.ome.tif"
    assert main(["segment", image, "-o", str(out), "--method", str(model)]) == 0
    assert io.read_labels(out).data.shape == (3, 96, 48)
    capsys.readouterr()
    # a set kept without neighbouring B-scans, or a start model: clear errors
    assert main(["train", str(trainset), "-o", str(tmp_path / "m.safetensors"), "--recipe", "aligned", *tiny]) == 2
    assert "context" in capsys.readouterr().err
    assert main(["train", str(folder), "-o", str(tmp_path / "m.safetensors"), "--recipe", "aligned",
                 "--from", "builtin"]) == 2
    assert "trains from scratch" in capsys.readouterr().err


def test_interrupted_training_keeps_best_and_resumes(trainset, tmp_path, monkeypatch, capsys):
    model = tmp_path / "stopped.safetensors"
    real_bar = _train.progress.cli_bar

    def bar_that_stops(*args, **kwargs):
        draw = real_bar(*args, **kwargs)

        def report(done, total, message):
            draw(done, total, message)
            if "epoch 1/3:" in message:  # end of the first epoch: Ctrl-C
                raise KeyboardInterrupt

        return report

    monkeypatch.setattr(_train.progress, "cli_bar", bar_that_stops)
    assert main(["train", str(trainset), "-o", str(model), "--epochs", "3", *TINY]) == 130
    assert "best model so far is kept" in capsys.readouterr().out
    info = read_model_info(model)
    assert info.training["stopped"] == "interrupted" and info.training["epochs_run"] == 1
    monkeypatch.undo()
    assert main(["train", str(trainset), "-o", str(model), "--epochs", "2", "--resume", *TINY]) == 0
    assert read_model_info(model).training["epochs_run"] == 2


def test_add_band_mask_folder(tmp_path, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    bands = np.zeros((2, 40, 30), np.uint8)
    bands[0, 10:20], bands[1, 11:20] = 255, 255
    for i, band in enumerate(bands):
        Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(images / f"{i:04d}.png")
        Image.fromarray(band).save(masks / f"{i:04d}.png")
    folder = tmp_path / "set"
    args = ["trainset", "add", str(folder), "--images-dir", str(images), "--masks-dir", str(masks),
            "--mask-kind", "epidermis-band", "--pixel-size", "3", "5"]
    assert main(args) == 0
    assert "added 2 annotated slice(s) in 2 pair(s)" in capsys.readouterr().out
    ts = TrainingSet.open(folder)
    assert ts.info().pixel_size_um == (3.0, 5.0)
    assert ts.info().pixels_per_class["epidermis"] == 10 * 30 + 9 * 30
    np.testing.assert_array_equal(ts.slices().labels[0], band_mask_to_labels(bands[0]))  # OCT: index = value


def test_cli_errors(tmp_path, phantom, capsys):
    image, labels = str(phantom / "image.ome.tif"), str(phantom / "labels.ome.tif")
    assert main(["trainset", "add", str(tmp_path / "s"), image]) == 2
    assert "one --labels file per image" in capsys.readouterr().err
    assert main(["trainset", "add", str(tmp_path / "s"), image, "--labels", labels, "--images-dir", "x"]) == 2
    assert "not both" in capsys.readouterr().err
    TrainingSet.create(tmp_path / "empty", OCT_CLASSES, modality="oct")
    assert main(["train", str(tmp_path / "empty"), "-o", str(tmp_path / "m.safetensors"), *TINY]) == 2
    assert "no annotated slices in" in capsys.readouterr().err
    rgb = tmp_path / "photo.png"
    Image.fromarray(np.zeros((96, 48, 3), np.uint8)).save(rgb)
    assert main(["trainset", "add", str(tmp_path / "oct"), image, "--labels", labels]) == 0
    assert main(["trainset", "add", str(tmp_path / "oct"), str(rgb), "--labels", labels, "--pixel-size", "2"]) == 2
    assert "colour (RGB) image cannot join the oct training set" in capsys.readouterr().err
    assert main(["trainset", "info", str(tmp_path / "nowhere")]) == 2
    assert "no such training-set folder" in capsys.readouterr().err


def test_trainset_info_lists_pairs_and_remove_takes_them_out(tmp_path, capsys):
    folder = tmp_path / "set"
    ts = TrainingSet.create(folder, OCT_CLASSES, modality="oct")
    labels = np.zeros((3, 32, 24), np.uint8)
    labels[[0, 1], 8:] = 4
    for source in ("a.tif", "b.tif", "c.tif"):
        ts.add(np.zeros((3, 32, 24), np.float32), labels, source=source)
    assert main(["trainset", "info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "pairs (id, annotated slices, source):\n  p0001  slice(s) 0-1  a.tif\n  p0002  slice(s) 0-1  b.tif" in out
    assert main(["trainset", "remove", str(folder), "p0002"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 pair(s) (p0002) with 2 annotated slice(s)" in out
    [backup] = (folder / "backups").iterdir()
    assert f"kept in {folder / 'backups'}: {backup.name}" in out
    assert "the set now holds 4 annotated slice(s) in 2 pair(s)" in out
    assert [r["source"] for r in TrainingSet.open(folder).pairs] == ["a.tif", "c.tif"]
    assert main(["trainset", "remove", str(folder), "p0002", "p0003"]) == 2
    assert "no pair p0002 in this training set; its pairs are p0001, p0003" in capsys.readouterr().err
    assert len(TrainingSet.open(folder).pairs) == 2  # nothing removed
    assert main(["trainset", "remove", str(folder), "p0001", "p0003"]) == 0
    capsys.readouterr()
    assert main(["trainset", "info", str(folder)]) == 0
    assert "0 annotated slice(s) in 0 pair(s)" in (out := capsys.readouterr().out) and "no pairs yet" in out


@pytest.mark.parametrize(("options", "compiled"), [
    (["--recipe", "aligned"], True), (["--recipe", "aligned", "--no-compile"], False),
    ([], False), (["--compile"], True),
])
def test_compiled_steps_follow_the_recipe_unless_told(options, compiled):
    args = build_parser().parse_args(["train", "set", "-o", "m.safetensors", *options])
    assert _train._config(args, scratch=True).compile is compiled
