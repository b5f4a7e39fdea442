"""``skinseg measure``: files written, numbers as the library's, headline, clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from skinseg import io
from skinseg.classes import OCT_CLASSES, TISSUE_CLASSES
from skinseg.cli import main
from skinseg.measure.thickness import measure_epidermis


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "oct", "-o", str(out), "--shape", "4", "96", "64", "--seed", "5"]) == 0
    return out


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_measure_writes_tables_png_json(phantom_dir, tmp_path, capsys):
    labels = phantom_dir / "labels.ome.tif"
    argv = ["measure", str(labels), "--image", str(phantom_dir / "image.ome.tif"),
            "--refractive-index", "1.4", "--per-ascan", "-o", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    names = {"summary.csv", "per_bscan.csv", "per_ascan.csv", "measurement.json", "thickness.png", "overview.png"}
    assert names <= {p.name for p in tmp_path.iterdir()}
    for png in ("thickness.png", "overview.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    want = measure_epidermis(io.read_labels(labels), refractive_index=1.4).summary
    [summary] = _rows(tmp_path / "summary.csv")
    for key in ("thickness_mean_um", "thickness_sd_um", "thickness_p95_um", "coverage"):
        assert float(summary[key]) == pytest.approx(want[key])
    assert float(summary["refractive_index"]) == 1.4
    assert len(_rows(tmp_path / "per_bscan.csv")) == 4 and len(_rows(tmp_path / "per_ascan.csv")) == 4 * 64
    assert json.loads((tmp_path / "measurement.json").read_text())["map_shape"] == [4, 64]

    out = capsys.readouterr().out
    assert f"{want['thickness_mean_um']:.1f} ± {want['thickness_sd_um']:.1f} µm" in out
    assert f"coverage {100 * want['coverage']:.1f} %" in out


def test_normal_correction_and_single_bscan(tmp_path):
    bscan = np.zeros((40, 30), np.uint8)
    bscan[10:, :] = OCT_CLASSES.value_of("epidermis")
    bscan[25:, :] = OCT_CLASSES.value_of("dermis")
    path = io.write_labels(tmp_path / "bscan.ome.tif", bscan, pixel_size_um=(2.0, 5.0), class_table=OCT_CLASSES)
    assert main(["measure", str(path), "--normal-correction", "-o", str(tmp_path / "out")]) == 0
    [summary] = _rows(tmp_path / "out" / "summary.csv")
    assert summary["normal_correction"] == "True"
    assert float(summary["thickness_mean_um"]) == pytest.approx(15 * 2.0)  # flat: no correction
    assert (tmp_path / "out" / "thickness.png").stat().st_size > 0


def test_missing_pixel_size_warns(tmp_path):
    path = tmp_path / "plain.tif"
    bscans = np.zeros((2, 40, 30), np.uint8)
    bscans[:, 10:] = OCT_CLASSES.value_of("epidermis")
    bscans[:, 20:] = OCT_CLASSES.value_of("dermis")
    tifffile.imwrite(path, bscans)
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        assert main(["measure", str(path), "-o", str(tmp_path / "out")]) == 0
    [summary] = _rows(tmp_path / "out" / "summary.csv")
    assert float(summary["thickness_mean_um"]) == pytest.approx(10.0)  # pixels, as 1 µm


def test_non_labels_files_are_refused(phantom_dir, tmp_path, capsys):
    image = phantom_dir / "image.ome.tif"
    assert main(["measure", str(image), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "image.ome.tif" in err and "OCT class table" in err and "Traceback" not in err

    tissue = io.write_labels(tmp_path / "tissue.ome.tif", np.ones((20, 20), np.uint8), pixel_size_um=1.0,
                             class_table=TISSUE_CLASSES)
    assert main(["measure", str(tissue), "-o", str(tmp_path)]) == 2
    assert "'biopsy-tissue' labels" in capsys.readouterr().err

    notes = tmp_path / "notes.png"
    notes.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["measure", str(notes), "-o", str(tmp_path)]) == 2
    assert "notes.png" in capsys.readouterr().err

    other = tmp_path / "other.npy"
    np.save(other, np.zeros((3, 96, 64), np.uint16))
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        assert main(["measure", str(phantom_dir / "labels.ome.tif"), "--image", str(other), "-o", str(tmp_path)]) == 2
    assert "does not match" in capsys.readouterr().err
