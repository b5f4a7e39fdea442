"""Readers: formats, pixel sizes in µm, axis order, lazy opening, claims, real data."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from skinseg.io import _tiff, claims_oct, claims_rgb, is_labels_file, read_oct, read_rgb

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

RNG = np.random.default_rng(0)


def volume(shape=(5, 24, 32), dtype=np.uint16) -> np.ndarray:
    return RNG.integers(0, 1000, shape).astype(dtype)


def quiet_read(path, **kw):
    """read_oct, asserting it warns about an unknown pixel size."""
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        return read_oct(path, **kw)


# --- TIFF family -------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "factor"), [("µm", 1.0), ("nm", 1e-3), ("mm", 1e3)])
def test_ome_tiff_physical_size_with_units(tmp_path: Path, unit: str, factor: float) -> None:
    vol = volume()
    path = tmp_path / "vol.ome.tif"
    meta = {"axes": "ZYX"}
    for axis, size in zip("ZYX", (8.0, 3.5, 2.0)):
        meta[f"PhysicalSize{axis}"], meta[f"PhysicalSize{axis}Unit"] = size, unit
    tifffile.imwrite(path, vol, ome=True, metadata=meta, photometric="minisblack")
    img = read_oct(path)
    np.testing.assert_array_equal(img.data, vol)
    assert img.pixel_size_um == pytest.approx((8.0 * factor, 3.5 * factor, 2.0 * factor))
    assert img.pixel_size_known and not img.rgb
    assert img.metadata["format"] == "ome-tiff"


@pytest.mark.parametrize(("unit", "factor"), [("micron", 1.0), ("\\u00B5m", 1.0), ("mm", 1e3)])
def test_imagej_tiff_spacing_and_resolution(tmp_path: Path, unit: str, factor: float) -> None:
    vol = volume()
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, vol, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
        metadata={"spacing": 7.0, "unit": unit, "axes": "ZYX"},
    )
    img = read_oct(path)
    np.testing.assert_array_equal(img.data, vol)
    # Z from spacing, Y (depth) from YResolution, X (width) from XResolution
    assert img.pixel_size_um == pytest.approx((7.0 * factor, 0.25 * factor, 0.5 * factor))


@pytest.mark.parametrize(("unit", "per_unit", "expected"), [("CENTIMETER", 1e4, 1.0), ("INCH", 25400.0, 1.0)])
def test_plain_tiff_resolution_tags(tmp_path: Path, unit: str, per_unit: float, expected: float) -> None:
    bscan = volume((24, 32))
    path = tmp_path / "b.tif"
    # 2 µm columns, 4 µm rows, as pixels per unit
    tifffile.imwrite(path, bscan, resolution=(per_unit / 2.0, per_unit / 4.0), resolutionunit=unit)
    img = read_oct(path)
    assert img.data.shape == (24, 32)
    assert img.pixel_size_um == pytest.approx((4.0 * expected, 2.0 * expected))
    assert img.pixel_size_known


def test_screen_dpi_is_not_a_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "b.tif"
    tifffile.imwrite(path, volume((24, 32)), resolution=(72, 72), resolutionunit="INCH")
    img = quiet_read(path)
    assert img.pixel_size_um == (1.0, 1.0) and not img.pixel_size_known


def test_stack_with_only_xy_size_warns_for_z(tmp_path: Path) -> None:
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, volume(), resolution=(1e4 / 2.0, 1e4 / 3.0), resolutionunit="CENTIMETER",
                     photometric="minisblack")
    with pytest.warns(UserWarning, match=r"axis \[0\]"):
        img = read_oct(path)
    assert img.pixel_size_um == pytest.approx((1.0, 3.0, 2.0))
    assert not img.pixel_size_known


def test_grey_rgb_tiff_becomes_2d(tmp_path: Path) -> None:
    bscan = volume((24, 32), np.uint8)
    path = tmp_path / "g.tif"
    tifffile.imwrite(path, np.stack([bscan] * 3, axis=-1), photometric="rgb")
    np.testing.assert_array_equal(quiet_read(path).data, bscan)


def test_singleton_leading_axes_are_squeezed(tmp_path: Path) -> None:
    vol = volume((1, 1, 4, 24, 32))
    path = tmp_path / "tczyx.npy"
    np.save(path, vol)
    assert quiet_read(path).data.shape == (4, 24, 32)


# --- lazy opening ------------------------------------------------------------------------


@pytest.fixture
def small_lazy_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make anything over 64 KiB count as big, so lazy paths run on small files."""
    monkeypatch.setattr(_tiff, "LAZY_BYTES", 64 * 1024)
    return 64 * 1024


def test_big_uncompressed_tiff_is_memory_mapped(tmp_path: Path, small_lazy_limit: int) -> None:
    vol = volume((20, 64, 128))  # 320 KiB
    path = tmp_path / "big.ome.tif"
    tifffile.imwrite(path, vol, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 2.0})
    with pytest.warns(UserWarning, match=r"axis \[0, 1\]"):
        img = read_oct(path)
    assert isinstance(img.data, np.memmap)
    np.testing.assert_array_equal(img.data[7], vol[7])


def test_big_compressed_tiff_is_dask(tmp_path: Path, small_lazy_limit: int) -> None:
    vol = volume((20, 64, 128))
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, vol, compression="zlib", photometric="minisblack")
    img = quiet_read(path)
    assert isinstance(img.data, da.Array)
    assert img.data.shape == vol.shape
    np.testing.assert_array_equal(img.data[3].compute(), vol[3])


def test_big_folder_is_dask_and_small_one_in_memory(tmp_path: Path, small_lazy_limit: int) -> None:
    vol = volume((6, 64, 128))  # 16 KiB per B-scan, 96 KiB in all
    for i, bscan in enumerate(vol):
        Image.fromarray(bscan).save(tmp_path / f"b{i}.png")
    img = quiet_read(tmp_path)
    assert isinstance(img.data, da.Array) and img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data.compute(), vol)
    for f in sorted(tmp_path.glob("b[3-5].png")):
        f.unlink()
    assert type(quiet_read(tmp_path).data) is np.ndarray


def test_npy_is_memory_mapped(tmp_path: Path) -> None:
    vol = volume()
    np.save(tmp_path / "v.npy", vol)
    img = read_oct(tmp_path / "v.npy", pixel_size_um=(10.0, 3.0, 2.0))
    assert isinstance(img.data, np.memmap)
    np.testing.assert_array_equal(img.data, vol)
    assert img.pixel_size_um == (10.0, 3.0, 2.0) and img.pixel_size_known


# --- zarr --------------------------------------------------------------------------------


def test_zarr_array_folder(tmp_path: Path) -> None:
    vol = volume()
    z = zarr.open_array(tmp_path / "v.zarr", mode="w", shape=vol.shape, dtype=vol.dtype, chunks=(1, 24, 32))
    z[:] = vol
    img = quiet_read(tmp_path / "v.zarr")
    assert isinstance(img.data, da.Array)
    np.testing.assert_array_equal(img.data.compute(), vol)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_level0_scale_and_units(tmp_path: Path, zarr_format: int) -> None:
    vol = volume()
    group = zarr.open_group(tmp_path / "v.ome.zarr", mode="w", zarr_format=zarr_format)
    level0 = group.create_array("0", shape=(1, 1, *vol.shape), dtype=vol.dtype, chunks=(1, 1, 1, 24, 32))
    level0[:] = vol[None, None]
    group.create_array("1", shape=(1, 1, 5, 12, 16), dtype=vol.dtype)
    multiscales = [{
        "version": "0.4",
        "axes": [
            {"name": "t", "type": "time", "unit": "second"},
            {"name": "c", "type": "channel"},
            {"name": "z", "type": "space", "unit": "micrometer"},
            {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "millimeter"},
        ],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 10.0, 3000.0, 0.002]}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 10.0, 6000.0, 0.004]}]},
        ],
    }]
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    else:
        group.attrs["multiscales"] = multiscales
    img = read_oct(tmp_path / "v.ome.zarr")
    assert img.data.shape == vol.shape
    np.testing.assert_array_equal(np.asarray(img.data), vol)
    assert img.pixel_size_um == pytest.approx((10.0, 3.0, 2.0))
    assert img.metadata["format"] == "ome-zarr"


# --- B-scan images -----------------------------------------------------------------------


def test_png_8bit_and_16bit(tmp_path: Path) -> None:
    for dtype in (np.uint8, np.uint16):
        bscan = volume((24, 32), dtype) * (1 if dtype == np.uint8 else 60)
        Image.fromarray(bscan).save(tmp_path / "b.png")
        img = quiet_read(tmp_path / "b.png")
        assert img.data.dtype == dtype
        np.testing.assert_array_equal(img.data, bscan)


def test_pgm_16bit_keeps_16_bits(tmp_path: Path) -> None:
    bscan = (volume((24, 32)) * 65).astype(np.uint16)  # values above 255 and up to ~65000
    Image.fromarray(bscan).save(tmp_path / "b.pgm")
    img = quiet_read(tmp_path / "b.pgm")
    assert img.data.dtype == np.uint16 and img.data.max() > 255
    np.testing.assert_array_equal(img.data, bscan)


def test_grey_rgb_png_becomes_2d_and_phys_gives_pixel_size(tmp_path: Path) -> None:
    bscan = volume((24, 32), np.uint8)
    Image.fromarray(np.stack([bscan] * 3, axis=-1)).save(tmp_path / "g.png", dpi=(25400 / 4.0, 25400 / 4.0))
    img = read_oct(tmp_path / "g.png")
    np.testing.assert_array_equal(img.data, bscan)
    assert img.pixel_size_um == pytest.approx((4.0, 4.0), rel=1e-3)


def test_folder_natural_sort(tmp_path: Path) -> None:
    names = ["scan_10.png", "scan_2.png", "scan_1.png", "notes.txt"]
    for name in names[:3]:
        value = int(name.split("_")[1].split(".")[0])
        Image.fromarray(np.full((8, 12), value, np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / ".thumbnail.png")  # hidden: skipped
    img = quiet_read(tmp_path)
    assert img.data.shape == (3, 8, 12)
    assert img.data[:, 0, 0].tolist() == [1, 2, 10]
    assert img.metadata["files"] == ["scan_1.png", "scan_2.png", "scan_10.png"]


def test_override_beats_file(tmp_path: Path) -> None:
    path = tmp_path / "b.tif"
    tifffile.imwrite(path, volume((24, 32)), resolution=(1e4 / 2.0, 1e4 / 2.0), resolutionunit="CENTIMETER")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = read_oct(path, pixel_size_um=5.75)
    assert img.pixel_size_um == (5.75, 5.75)


# --- vendor files through oct-converter (a stand-in module: the package is optional) ---


class _Volume:
    def __init__(self, bscans: list[np.ndarray], spacing_mm: list[float] | None) -> None:
        self.volume, self.pixel_spacing = bscans, spacing_mm


def fake_oct_converter(monkeypatch: pytest.MonkeyPatch, vol: np.ndarray) -> None:
    """Install a stand-in ``oct_converter.readers`` with the readers' calling convention."""

    class FDS:
        def __init__(self, path: str) -> None:
            self.path = path

        def read_oct_volume(self) -> _Volume:  # (width, depth, B-scan spacing) in mm
            return _Volume(list(vol), [0.012, 0.0035, 0.047])

    class BOCT(FDS):
        def read_oct_volume(self) -> _Volume:
            raise ValueError("OCT header does not match Bioptigen .OCT format")

    class POCT(FDS):
        def read_oct_volume(self) -> list[_Volume]:
            return [_Volume(list(vol), None)]

    readers = types.ModuleType("oct_converter.readers")
    readers.FDS, readers.BOCT, readers.POCT = FDS, BOCT, POCT
    monkeypatch.setitem(sys.modules, "oct_converter", types.ModuleType("oct_converter"))
    monkeypatch.setitem(sys.modules, "oct_converter.readers", readers)


def test_vendor_volume_and_spacing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vol = volume()
    fake_oct_converter(monkeypatch, vol)
    (tmp_path / "eye.fds").write_bytes(b"fds")
    img = read_oct(tmp_path / "eye.fds")
    np.testing.assert_array_equal(img.data, vol)
    assert img.pixel_size_um == pytest.approx((47.0, 3.5, 12.0))
    # Bioptigen fails, Optovue reads it; no spacing recorded
    (tmp_path / "eye.OCT").write_bytes(b"oct")
    np.testing.assert_array_equal(quiet_read(tmp_path / "eye.OCT").data, vol)


# --- RGB ---------------------------------------------------------------------------------


def test_rgb_tiff_with_resolution_and_uint16_kept(tmp_path: Path) -> None:
    for dtype in (np.uint8, np.uint16):
        rgb = volume((24, 32, 3), dtype)
        path = tmp_path / f"slide_{np.dtype(dtype).name}.tif"
        tifffile.imwrite(path, rgb, photometric="rgb", resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
        img = read_rgb(path)
        assert img.rgb and img.data.dtype == dtype
        np.testing.assert_array_equal(img.data, rgb)
        assert img.pixel_size_um == pytest.approx((0.5, 0.5))


def test_big_rgb_tiff_is_memory_mapped(tmp_path: Path, small_lazy_limit: int) -> None:
    rgb = volume((128, 256, 3), np.uint8)
    tifffile.imwrite(tmp_path / "slide.tif", rgb, photometric="rgb")
    img = read_rgb(tmp_path / "slide.tif", pixel_size_um=0.25)
    assert isinstance(img.data, np.memmap)
    np.testing.assert_array_equal(img.data, rgb)


def test_jpeg_dpi_is_ignored_and_png_rgb_read(tmp_path: Path) -> None:
    rgb = volume((24, 32, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", dpi=(300, 300), quality=95)
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        img = read_rgb(tmp_path / "p.jpg")
    assert img.data.shape == (24, 32, 3) and img.pixel_size_um == (1.0, 1.0)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    with pytest.warns(UserWarning, match="pixel size not recorded"):
        np.testing.assert_array_equal(read_rgb(tmp_path / "p.png").data, rgb)


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 40)
    rgb[:, 4:] = (10, 150, 60)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=2).save(tmp_path / "p.png")
    assert claims_rgb(tmp_path / "p.png")
    img = read_rgb(tmp_path / "p.png", pixel_size_um=1.0)
    np.testing.assert_array_equal(img.data, rgb)


def test_opaque_rgba_drops_alpha_with_warning(tmp_path: Path) -> None:
    rgb = volume((24, 32, 3), np.uint8)
    rgba = np.concatenate([rgb, np.full((24, 32, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha channel is fully opaque"):
        img = read_rgb(tmp_path / "a.png", pixel_size_um=1.0)
    np.testing.assert_array_equal(img.data, rgb)


# --- claims ------------------------------------------------------------------------------


def test_claims(tmp_path: Path) -> None:
    grey, rgb = volume((24, 32), np.uint8), volume((24, 32, 3), np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg")
    tifffile.imwrite(tmp_path / "g.tif", grey)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    np.save(tmp_path / "v.npy", volume())
    (tmp_path / "x.fds").write_bytes(b"vendor")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.tif").write_text("not a tiff")
    folder = tmp_path / "bscans"
    folder.mkdir()
    Image.fromarray(grey).save(folder / "1.png")
    expect_oct = {"g.png", "g.tif", "v.npy", "x.fds", "bscans"}
    expect_rgb = {"c.png", "c.jpg", "c.tif"}
    for path in tmp_path.iterdir():
        assert claims_oct(path) == (path.name in expect_oct), path.name
        assert claims_rgb(path) == (path.name in expect_rgb), path.name
        assert not is_labels_file(path)
    assert not claims_oct(tmp_path / "missing.tif") and not claims_rgb(tmp_path / "missing.png")


# --- real data ---------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_face_folder_and_other_device_png() -> None:
    folder = DATA / "skin-oct-face-dev" / "images"
    png = DATA / "oct-other-device" / "backhand_relaxed.png"
    if not folder.is_dir() or not png.is_file():
        pytest.skip(f"real data not found under {DATA}")
    assert claims_oct(folder) and claims_oct(png)
    img = quiet_read(folder)
    assert img.data.shape == (60, 512, 512) and img.data.dtype == np.uint16
    with Image.open(folder / "0060.pgm") as im:  # the last B-scan in natural order
        np.testing.assert_array_equal(img.data[-1], np.asarray(im))
    assert img.data.max() > 255
    other = read_oct(png, pixel_size_um=5.75)
    assert other.data.ndim == 2 and other.data.dtype == np.uint8
    assert other.data.shape == (924, 1252)
