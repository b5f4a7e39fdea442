"""Bad input gets one clear SkinsegInputError naming the file and what to do."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io import read_labels, read_oct, read_rgb, write_labels


def raises(path: Path, match: str, reader=read_oct, **kw) -> SkinsegInputError:
    """Assert ``reader(path)`` raises SkinsegInputError naming ``path`` and matching ``match``."""
    with pytest.raises(SkinsegInputError, match=match) as info:
        reader(path, **kw)
    assert str(path) in str(info.value)
    return info.value


def tiff_bytes(tmp_path: Path, **kw) -> bytes:
    path = tmp_path / "whole.tif"
    tifffile.imwrite(path, np.arange(6 * 40 * 50, dtype=np.uint16).reshape(6, 40, 50),
                     photometric="minisblack", **kw)
    return path.read_bytes()


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("keep", [0.5, 100, 7])
def test_truncated_tiff(tmp_path: Path, compression: str | None, keep: float) -> None:
    whole = tiff_bytes(tmp_path, compression=compression)
    path = tmp_path / "cut.tif"
    path.write_bytes(whole[: int(len(whole) * keep) if keep < 1 else keep])
    err = raises(path, "truncated|damaged|cannot be read as a TIFF")
    assert "Traceback" not in str(err)


def test_pixel_data_past_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "bscan.tif"
    tifffile.imwrite(path, np.ones((200, 300), np.uint16))  # header and IFD first, pixels after
    path.write_bytes(path.read_bytes()[:60000])
    raises(path, "truncated or damaged.*pixel data run to byte")


def test_decoder_errors_are_chained(tmp_path: Path) -> None:
    path = tmp_path / "fake.tif"
    path.write_text("this is a text file, not a TIFF")
    err = raises(path, "cannot be read as a TIFF.*extension matches its content")
    assert err.__cause__ is not None


def test_empty_and_missing_files(tmp_path: Path) -> None:
    for name in ("empty.tif", "empty.png", "empty.npy"):
        (tmp_path / name).write_bytes(b"")
        raises(tmp_path / name, "empty \\(0 bytes\\)")
        raises(tmp_path / name, "empty \\(0 bytes\\)", reader=read_rgb)
    raises(tmp_path / "nowhere.tif", "no such file")


def test_wrong_extension(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not a png")
    raises(tmp_path / "fake.png", "cannot be read as an image")
    (tmp_path / "fake.npy").write_text("not numpy")
    raises(tmp_path / "fake.npy", "cannot be read as a numpy .npy file")
    (tmp_path / "scan.xyz").write_bytes(b"\x00" * 10)
    raises(tmp_path / "scan.xyz", "does not read '.xyz' files")


@pytest.mark.parametrize("shape", [(100,), (2, 3, 4, 5, 6), (2, 1, 4, 5)])
def test_wrong_dimensions(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.save(tmp_path / "a.npy", np.zeros(shape, np.uint8))
    raises(tmp_path / "a.npy", re.escape(f"shape {tuple(shape)}") + r".*B-scan \(depth, width\)")


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 5), bool), "booleans"),
        (np.zeros((4, 5), np.complex64), "complex"),
        (np.zeros((4, 5), "U3"), "<U3 values"),
    ],
)
def test_unsupported_types(tmp_path: Path, array: np.ndarray, match: str) -> None:
    np.save(tmp_path / "a.npy", array)
    raises(tmp_path / "a.npy", match, pixel_size_um=1.0)


def test_object_npy_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    raises(tmp_path / "o.npy", "cannot be read as a numpy .npy file")


def test_float_with_nan_counts_them(tmp_path: Path) -> None:
    vol = np.ones((3, 8, 9), np.float32)
    vol[1, 2, 3] = vol[2, 0, 0] = np.nan
    np.save(tmp_path / "v.npy", vol)
    raises(tmp_path / "v.npy", "contains 2 NaN values of 216")
    tifffile.imwrite(tmp_path / "v.tif", vol, photometric="minisblack")
    raises(tmp_path / "v.tif", "contains 2 NaN")


def test_float_without_nan_is_fine(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.ones((3, 8, 9), np.float64))
    assert read_oct(tmp_path / "v.npy", pixel_size_um=1.0).data.dtype == np.float64


def test_rgba_with_transparency_refused(tmp_path: Path) -> None:
    rgba = np.full((6, 7, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[0, :3, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "a.png")
    raises(tmp_path / "a.png", "3 of 42 pixels are transparent", reader=read_rgb)
    raises(tmp_path / "a.png", "transparent")


def test_colour_refused_by_read_oct_and_grey_by_read_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    raises(tmp_path / "c.png", "colour image.*read_rgb")
    raises(tmp_path / "c.tif", "colour image.*read_rgb")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    tifffile.imwrite(tmp_path / "g.tif", rgb[..., 0])
    raises(tmp_path / "g.png", "not an RGB image.*read_oct", reader=read_rgb)
    raises(tmp_path / "g.tif", "not an RGB image.*read_oct", reader=read_rgb)


def test_folder_with_odd_file_names_it(tmp_path: Path) -> None:
    for i in range(1, 4):
        Image.fromarray(np.zeros((8, 12), np.uint8)).save(tmp_path / f"{i}.png")
    Image.fromarray(np.zeros((8, 13), np.uint8)).save(tmp_path / "10.png")
    err = raises(tmp_path, "same shape and type")
    assert str(tmp_path / "10.png") in str(err) and "(8, 13)" in str(err)
    Image.fromarray(np.zeros((8, 12), np.uint16)).save(tmp_path / "10.png")
    err = raises(tmp_path, "uint16.*uint8")
    assert "10.png" in str(err)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    raises(tmp_path, "holds no B-scan images")


def test_vendor_without_oct_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oct_converter", None)  # import fails even if installed
    monkeypatch.setitem(sys.modules, "oct_converter.readers", None)
    for suffix in (".fds", ".e2e", ".OCT"):
        (tmp_path / f"scan{suffix}").write_bytes(b"\x00" * 64)
        raises(tmp_path / f"scan{suffix}", r'pip install "napari-skinseg\[vendor\]"')


def test_zarr_group_without_multiscales_lists_arrays(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=(4, 5), dtype=np.uint8)
    raises(tmp_path / "g.zarr", r"without OME-NGFF 'multiscales'.*\['raw'\]")


def test_ome_zarr_with_channels_refused(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "c.ome.zarr", mode="w")
    group.create_array("0", shape=(2, 4, 5), dtype=np.uint8)
    group.attrs["ome"] = {"multiscales": [{
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}],
    }]}
    raises(tmp_path / "c.ome.zarr", "has 2 'c' entries")


def test_read_labels_refuses_non_tiff_and_floats(tmp_path: Path) -> None:
    np.save(tmp_path / "l.npy", np.zeros((4, 5), np.uint8))
    raises(tmp_path / "l.npy", "TIFF/OME-TIFF", reader=read_labels)
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 5), np.float32))
    raises(tmp_path / "f.tif", "float32.*whole class values", reader=read_labels)


def test_damaged_labels_metadata(tmp_path: Path) -> None:
    path = tmp_path / "l.ome.tif"
    write_labels(path, np.zeros((4, 5), np.uint8), pixel_size_um=1.0, class_table=OCT_CLASSES)
    whole = path.read_bytes()
    path.write_bytes(whole.replace(b"&quot;classes&quot;", b"&quot;classeZ&quot;"))
    raises(path, "class table is damaged", reader=read_labels)
    start = whole.index(b"<OME")
    path.write_bytes(whole[: start + 10] + b"<<" + whole[start + 12 :])
    raises(path, "OME-XML metadata is damaged", reader=read_labels)
    raises(path, "OME-XML metadata is damaged")
