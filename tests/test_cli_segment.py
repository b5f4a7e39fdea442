"""``skinseg segment`` and ``skinseg run`` on phantoms written to disk."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from skinseg import io
from skinseg.classes import OCT_CLASSES
from skinseg.cli import _run, main
from skinseg.measure.boundaries import dej_depth, surface_depth


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "oct", "-o", str(out), "--shape", "4", "128", "96", "--seed", "21"]) == 0
    return out


def test_segment_classical_writes_oct_labels(phantom_dir, tmp_path):
    out = tmp_path / "layers.ome.tif"
    assert main(["segment", str(phantom_dir / "image.ome.tif"), "-o", str(out), "--method", "classical"]) == 0
    labels = io.read_labels(out)
    truth = io.read_labels(phantom_dir / "labels.ome.tif")
    assert labels.metadata["class_table"] == OCT_CLASSES and labels.metadata["model"] == "classical"
    assert labels.pixel_size_um == truth.pixel_size_um
    # a real segmentation, not a copy: close to the truth, within a few pixels
    assert np.nanmean(np.abs(surface_depth(labels.data) - surface_depth(truth.data))) < 3
    assert np.nanmean(np.abs(dej_depth(labels.data) - dej_depth(truth.data))) < 4


def test_segment_pixel_size_override_and_uncertainty_note(phantom_dir, tmp_path, capsys):
    out = tmp_path / "layers.ome.tif"
    args = ["segment", str(phantom_dir / "image.ome.tif"), "-o", str(out), "--pixel-size", "20", "3", "20",
            "--uncertainty", str(tmp_path / "u.ome.tif")]
    assert main(args) == 0
    assert io.read_labels(out).pixel_size_um == (20.0, 3.0, 20.0)
    assert "no uncertainty map" in capsys.readouterr().out  # classical gives none
    assert not (tmp_path / "u.ome.tif").exists()


def test_segment_one_pixel_size_for_every_axis(phantom_dir, tmp_path):
    out = tmp_path / "layers.ome.tif"
    assert main(["segment", str(phantom_dir / "image.ome.tif"), "-o", str(out), "--pixel-size", "4.5"]) == 0
    assert io.read_labels(out).pixel_size_um == (4.5, 4.5, 4.5)


def test_run_segments_and_measures(phantom_dir, tmp_path, capsys):
    assert main(["run", str(phantom_dir / "image.ome.tif"), "-o", str(tmp_path)]) == 0
    for name in ("labels.ome.tif", "summary.csv", "per_bscan.csv", "thickness.png", "overview.png", "measurement.json"):
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "summary.csv") as fh:
        [summary] = list(csv.DictReader(fh))
    assert float(summary["coverage"]) > 0.9
    truth = io.read_labels(phantom_dir / "labels.ome.tif")
    truth_um = truth.pixel_size_um[1] * np.mean(dej_depth(truth.data) - surface_depth(truth.data))
    assert abs(float(summary["thickness_mean_um"]) - truth_um) < 0.15 * truth_um
    assert "epidermal thickness" in capsys.readouterr().out


def test_run_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_run, "SAMPLE_SHAPE", (3, 128, 96))
    assert main(["run", "--sample", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sample truth" in out and "napari" in out
    assert io.read_oct(tmp_path / "image.ome.tif").data.shape == (3, 128, 96)


def test_run_needs_input_or_sample(tmp_path, capsys):
    assert main(["run", "-o", str(tmp_path)]) == 2
    assert "INPUT" in capsys.readouterr().err
