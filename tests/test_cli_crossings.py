"""``skinseg crossings`` on a biopsy phantom written to disk: tables, units, labels, overlay, bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from skinseg import io
from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.cli import _crossings, main
from skinseg.synth.biopsy import biopsy_phantom

SHAPE = (400, 600)
PX = 0.5


@pytest.fixture(scope="module")
def phantom():
    return biopsy_phantom(SHAPE, PX, seed=4, stain="dab")


@pytest.fixture(scope="module")
def image_tif(phantom, tmp_path_factory):
    path = tmp_path_factory.mktemp("biopsy") / "biopsy.ome.tif"
    return io.write_image(path, phantom.image, pixel_size_um=(PX, PX), rgb=True)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_crossings_end_to_end(image_tif, phantom, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["crossings", str(image_tif), "-o", str(out)]) == 0
    rows = _rows(out / "crossings.csv")
    [summary] = _rows(out / "summary.csv")
    header = (out / "crossings.csv").read_text().splitlines()[0]
    assert header == "row,col,y_um,x_um"
    pts = np.array([[float(r[k]) for k in ("row", "col", "y_um", "x_um")] for r in rows]).reshape(-1, 4)
    np.testing.assert_allclose(pts[:, 2:], pts[:, :2] * PX)  # µm = px × pixel size
    assert (pts[:, 0] < SHAPE[0]).all() and (pts[:, 1] < SHAPE[1]).all()

    count = int(summary["count"])
    assert count == len(rows) and abs(count - phantom.count) <= max(2, phantom.count // 2)
    surface_mm, dej_mm = float(summary["epidermis_length_mm"]), float(summary["dej_length_mm"])
    assert surface_mm == pytest.approx(phantom.surface_length_um / 1000, rel=0.1)
    assert dej_mm == pytest.approx(phantom.dej_length_um / 1000, rel=0.2)
    assert float(summary["ienfd_per_mm"]) == pytest.approx(count / surface_mm)
    assert float(summary["ienfd_per_mm_dej"]) == pytest.approx(count / dej_mm)
    assert float(summary["pixel_size_um"]) == PX and summary["rule"] == "skeleton"
    assert summary["tissue"] == summary["nerves"] == "classical"

    tissue, nerves = io.read_labels(out / "tissue.ome.tif"), io.read_labels(out / "nerves.ome.tif")
    assert tissue.metadata["class_table"] == TISSUE_CLASSES and nerves.metadata["class_table"] == NERVE_CLASSES
    assert tissue.data.shape == nerves.data.shape == SHAPE and tissue.pixel_size_um == (PX, PX)
    assert np.mean(tissue.data == phantom.tissue) > 0.9  # a real segmentation of this image
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{count} crossings" in capsys.readouterr().out


def test_png_without_pixel_size_needs_it_then_seed_rule(phantom, tmp_path, capsys):
    png = tmp_path / "biopsy.png"
    Image.fromarray(phantom.image).save(png)
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        assert main(["crossings", str(png), "-o", str(tmp_path / "a")]) == 2
    assert "--pixel-size" in capsys.readouterr().err
    out = tmp_path / "b"
    args = ["crossings", str(png), "-o", str(out), "--pixel-size", "1.0", "--rule", "seed", "--band-width-um", "3"]
    assert main(args) == 0
    [summary] = _rows(out / "summary.csv")
    assert summary["rule"] == "seed" and float(summary["band_width_um"]) == 3.0
    assert float(summary["pixel_size_um"]) == 1.0
    rows = _rows(out / "crossings.csv")
    for r in rows:
        assert float(r["y_um"]) == pytest.approx(float(r["row"]))  # 1 µm per pixel
    # the same image read at twice the true pixel size: twice the true surface length
    assert float(summary["epidermis_length_mm"]) == pytest.approx(2 * phantom.surface_length_um / 1000, rel=0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda img: Image.fromarray(img[..., 0]), "not an RGB image"),
        (lambda img: Image.fromarray(np.dstack([img, np.full(img.shape[:2], 128, np.uint8)])), "transparent"),
    ],
    ids=["grayscale", "rgba"],
)
def test_grey_and_rgba_are_refused(phantom, tmp_path, capsys, make, message):
    path = tmp_path / "bad.png"
    make(phantom.image).save(path)
    assert main(["crossings", str(path), "-o", str(tmp_path / "out"), "--pixel-size", "0.5"]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.png" in err
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_pixel_size_zero_is_refused(image_tif, tmp_path, capsys):
    assert main(["crossings", str(image_tif), "-o", str(tmp_path), "--pixel-size", "0"]) == 2
    assert "--pixel-size must be a positive" in capsys.readouterr().err


def test_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_crossings, "SAMPLE_SHAPE", SHAPE)
    assert main(["crossings", "--sample", "-o", str(tmp_path)]) == 0
    image = io.read_rgb(tmp_path / "image.ome.tif")
    assert image.data.shape == (*SHAPE, 3) and image.pixel_size_um == (PX, PX)
    assert "true crossings" in capsys.readouterr().out
    assert (tmp_path / "summary.csv").is_file()


def test_image_without_tissue_counts_zero_with_a_note(tmp_path, capsys):
    blank = tmp_path / "slide.png"
    Image.fromarray(np.full((200, 300, 3), 245, np.uint8)).save(blank)  # an empty slide
    assert main(["crossings", str(blank), "-o", str(tmp_path), "--pixel-size", "0.5"]) == 0
    assert (tmp_path / "crossings.csv").read_text().strip() == "row,col,y_um,x_um"
    [summary] = _rows(tmp_path / "summary.csv")
    assert summary["count"] == "0" and summary["ienfd_per_mm"] == "" and float(summary["epidermis_length_mm"]) == 0
    assert "note: no epidermis" in capsys.readouterr().out
