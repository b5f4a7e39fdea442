"""Writers: labels OME-TIFF round trips with class table, CSV tables, atomic writes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES, ClassTable, LabelClass
from skinseg.errors import SkinsegInputError
from skinseg.io import claims_oct, is_labels_file, read_labels, write_labels, write_table_csv

RNG = np.random.default_rng(1)


@pytest.mark.parametrize(
    ("shape", "dtype", "table", "sizes"),
    [
        ((24, 32), np.uint8, TISSUE_CLASSES, (0.5, 0.25)),
        ((5, 24, 32), np.uint8, OCT_CLASSES, (10.0, 3.3, 2.5)),
        ((5, 24, 32), np.uint16, NERVE_CLASSES, (12.0, 1.5, 1.5)),
    ],
)
def test_labels_round_trip(tmp_path: Path, shape, dtype, table: ClassTable, sizes) -> None:
    labels = RNG.choice(table.values, size=shape).astype(dtype)
    path = tmp_path / "sample.labels.ome.tif"
    out = write_labels(path, labels, pixel_size_um=sizes, class_table=table, metadata={"model": "unet", "epoch": 3})
    assert out == path
    back = read_labels(path)
    assert back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, labels)
    assert back.pixel_size_um == pytest.approx(sizes) and back.pixel_size_known
    assert back.metadata["class_table"] == table
    assert back.metadata["model"] == "unet" and back.metadata["epoch"] == 3
    assert is_labels_file(path) and not claims_oct(path)


def test_labels_file_is_plain_ome_for_other_tools(tmp_path: Path) -> None:
    labels = np.zeros((3, 6, 7), np.uint8)
    write_labels(tmp_path / "l.ome.tif", labels, pixel_size_um=(9.0, 3.0, 2.0), class_table=OCT_CLASSES)
    with tifffile.TiffFile(tmp_path / "l.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        xml = tif.ome_metadata
    assert 'PhysicalSizeX="2.0"' in xml and 'PhysicalSizeZ="9.0"' in xml and "µm" in xml


def test_class_table_with_odd_names_survives(tmp_path: Path) -> None:
    table = ClassTable("odd <&> \"table\"", (LabelClass(0, "bg", "#000000"), LabelClass(7, "scar & <wound>", "#ff0000")))
    labels = np.array([[0, 7], [7, 0]], np.uint8)
    write_labels(tmp_path / "l.tif", labels, pixel_size_um=1.0, class_table=table)
    assert read_labels(tmp_path / "l.tif").metadata["class_table"] == table


def test_other_integer_types_are_stored_small(tmp_path: Path) -> None:
    write_labels(tmp_path / "a.tif", np.array([[0, 6], [4, 5]], np.int64), pixel_size_um=1.0, class_table=OCT_CLASSES)
    assert read_labels(tmp_path / "a.tif").data.dtype == np.uint8
    write_labels(tmp_path / "b.tif", np.eye(3, dtype=bool), pixel_size_um=1.0, class_table=NERVE_CLASSES)
    np.testing.assert_array_equal(read_labels(tmp_path / "b.tif").data, np.eye(3, dtype=np.uint8))


def test_foreign_labels_tiff_reads_without_table(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "napari.tif", np.array([[0, 1], [2, 3]], np.int32))
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        back = read_labels(tmp_path / "napari.tif")
    assert back.metadata["class_table"] is None and back.data.dtype == np.uint8
    assert not is_labels_file(tmp_path / "napari.tif")


@pytest.mark.parametrize(
    ("labels", "kw", "match"),
    [
        (np.zeros((4, 5), np.float32), {}, "float32.*whole class values"),
        (np.array([[0, -1]], np.int16), {}, "from -1 to 0"),
        (np.array([[0, 9]], np.uint8), {}, r"values \[9\].*does not have"),
        (np.zeros((4,), np.uint8), {}, "shape"),
        (np.zeros((4, 5), np.uint8), {"pixel_size_um": (1.0, 2.0, 3.0)}, "does not fit 2 spatial axes"),
        (np.zeros((4, 5), np.uint8), {"metadata": {"class_table": 1}}, "reserved"),
        (np.zeros((4, 5), np.uint8), {"metadata": {"when": object()}}, "JSON-serialisable"),
    ],
)
def test_write_labels_refuses_bad_input(tmp_path: Path, labels, kw, match) -> None:
    path = tmp_path / "l.ome.tif"
    args = {"pixel_size_um": 1.0, "class_table": OCT_CLASSES, **kw}
    with pytest.raises(SkinsegInputError, match=match) as info:
        write_labels(path, labels, **args)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_write_labels_replaces_existing_file_without_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "l.ome.tif"
    write_labels(path, np.zeros((4, 5), np.uint8), pixel_size_um=1.0, class_table=OCT_CLASSES)
    write_labels(path, np.full((4, 5), 6, np.uint8), pixel_size_um=2.0, class_table=OCT_CLASSES)
    assert [p.name for p in tmp_path.iterdir()] == ["l.ome.tif"]
    back = read_labels(path)
    assert back.data.max() == 6 and back.pixel_size_um == (2.0, 2.0)


# --- CSV tables --------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_rows_as_dicts(tmp_path: Path) -> None:
    rows = [
        {"bscan": np.int64(0), "thickness_µm": np.float32(0.1), "ok": True},
        {"bscan": 1, "thickness_µm": float("nan"), "note": "edge"},
        {"bscan": 2, "thickness_µm": 1e-5, "ok": np.bool_(False)},
    ]
    write_table_csv(tmp_path / "t.csv", rows)
    back = read_csv(tmp_path / "t.csv")
    assert list(back[0]) == ["bscan", "thickness_µm", "ok", "note"]
    assert [r["thickness_µm"] for r in back] == ["0.1", "", "1e-05"]
    assert [r["ok"] for r in back] == ["True", "", "False"]
    assert back[1]["note"] == "edge" and back[0]["note"] == ""
    assert float(back[2]["thickness_µm"]) == 1e-5


def test_columns_as_dict_round_trip_floats(tmp_path: Path) -> None:
    values = RNG.normal(30.0, 5.0, 50)
    write_table_csv(tmp_path / "c.csv", {"index": np.arange(50), "value": values})
    back = read_csv(tmp_path / "c.csv")
    assert [int(r["index"]) for r in back] == list(range(50))
    assert [float(r["value"]) for r in back] == values.tolist()  # exact round trip


def test_table_errors_and_atomicity(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with pytest.raises(SkinsegInputError, match="differ in length"):
        write_table_csv(path, {"a": [1, 2], "b": [1]})
    with pytest.raises(SkinsegInputError, match="empty"):
        write_table_csv(path, [])
    write_table_csv(path, [{"a": 1}])

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("cannot format")

    with pytest.raises(RuntimeError):
        write_table_csv(path, [{"a": 2}, {"a": Broken()}])
    assert read_csv(path) == [{"a": "1"}]  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary left behind
