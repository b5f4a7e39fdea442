"""The ``skinseg`` command line, run in-process and as the installed console script."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from skinseg import io
from skinseg.cli import main
from skinseg.classes import OCT_CLASSES, TISSUE_CLASSES


def test_console_script_help():
    script = Path(sys.executable).with_name("skinseg")  # the installed console script
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "phantom" in out.stdout and "info" in out.stdout


def test_phantom_oct_writes_image_labels_truth_overview(tmp_path, capsys):
    assert main(["phantom", "oct", "-o", str(tmp_path), "--shape", "4", "96", "64", "--seed", "3"]) == 0
    image = io.read_oct(tmp_path / "image.ome.tif")
    labels = io.read_labels(tmp_path / "labels.ome.tif")
    assert image.data.shape == labels.data.shape == (4, 96, 64)
    assert image.pixel_size_known and image.pixel_size_um == labels.pixel_size_um
    assert labels.metadata["class_table"] == OCT_CLASSES
    with open(tmp_path / "truth.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 64
    thickness = np.array([float(r["thickness_um"]) for r in rows])
    dej_minus_surface = np.array([float(r["dej_px"]) - float(r["surface_px"]) for r in rows])
    np.testing.assert_allclose(thickness, dej_minus_surface * image.pixel_size_um[1], rtol=1e-4)
    assert (tmp_path / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "labels.ome.tif" in capsys.readouterr().out


def test_phantom_biopsy_writes_crossings(tmp_path):
    assert main(["phantom", "biopsy", "-o", str(tmp_path), "--seed", "2"]) == 0
    image = io.read_rgb(tmp_path / "image.ome.tif")
    tissue = io.read_labels(tmp_path / "tissue.ome.tif")
    assert image.rgb and image.data.shape[:2] == tissue.data.shape
    assert tissue.metadata["class_table"] == TISSUE_CLASSES
    with open(tmp_path / "crossings.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"row", "col", "y_um", "x_um"}
    nerves = io.read_labels(tmp_path / "nerves.ome.tif").data
    rc = np.array([[float(r["row"]), float(r["col"])] for r in rows]).round().astype(int)
    assert nerves[rc[:, 0], rc[:, 1]].mean() > 0.5


def test_info_reports_pixel_size(tmp_path, capsys):
    main(["phantom", "oct", "-o", str(tmp_path), "--shape", "2", "64", "32"])
    capsys.readouterr()
    assert main(["info", str(tmp_path / "labels.ome.tif")]) == 0
    out = capsys.readouterr().out
    assert "labels (oct-layers)" in out and "(2, 64, 32)" in out and "µm" in out


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skinseg: error:") and "broken.tif" in err and "Traceback" not in err
