"""The plugin through a real napari viewer: manifest, samples, readers, writer, widgets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from skinseg import io
from skinseg.classes import OCT_CLASSES, TISSUE_CLASSES

pytestmark = pytest.mark.napari
PLUGIN = "napari-skinseg"


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution(PLUGIN)
    assert manifest.name == PLUGIN
    assert {s.key for s in manifest.contributions.sample_data} == {"oct", "biopsy", "biopsy-fluorescent"}


def test_oct_sample_opens_with_um_scale(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample(PLUGIN, "oct")
    image, labels = layers
    assert image.data.shape == labels.data.shape == (64, 256, 256)
    assert image.data.dtype == np.uint16 and labels.data.dtype == np.uint8
    assert tuple(image.scale) == tuple(labels.scale)
    assert all(s > 1.0 for s in image.scale)  # µm, not pixels
    assert [str(u) for u in image.units] == ["micrometer"] * 3
    assert labels.get_status((10, 200, 100))["coordinates"]  # class name shown under cursor
    assert set(np.unique(labels.data)) <= set(OCT_CLASSES.values)
    assert labels.colormap.map(np.array([OCT_CLASSES.value_of("dermis")]))[0][:3].tolist() == pytest.approx(
        OCT_CLASSES.colors_rgba()[6][:3]
    )


@pytest.mark.parametrize("key", ["biopsy", "biopsy-fluorescent"])
def test_biopsy_samples_open(make_napari_viewer, key):
    viewer = make_napari_viewer()
    image, tissue, nerves, crossings = viewer.open_sample(PLUGIN, key)
    assert image.rgb and image.data.shape[-1] == 3 and image.data.ndim == 3
    assert tissue.data.shape == nerves.data.shape == image.data.shape[:2]
    assert set(np.unique(tissue.data)) <= set(TISSUE_CLASSES.values)
    assert tuple(image.scale) == tuple(tissue.scale) == tuple(crossings.scale)
    assert image.scale[0] < 1.0  # sub-micron pixels at 20×
    assert len(crossings.data) > 0
    rows, cols = np.round(crossings.data).astype(int).T
    assert nerves.data[rows, cols].mean() > 0.5  # crossings sit on fibres


def _write_ome(path, data, pixel_size_um):
    tifffile.imwrite(
        path, data, ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeZ": pixel_size_um[0], "PhysicalSizeY": pixel_size_um[1],
                  "PhysicalSizeX": pixel_size_um[2]},
    )


def test_reader_opens_oct_tiff_with_scale(make_napari_viewer, tmp_path):
    path = tmp_path / "scan.ome.tif"
    data = np.random.default_rng(0).integers(0, 4000, (5, 40, 30), dtype=np.uint16)
    _write_ome(path, data, (12.0, 2.5, 8.0))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.name == "scan"
    assert layer.data.shape == (5, 40, 30)
    np.testing.assert_allclose(layer.scale, (12.0, 2.5, 8.0))
    np.testing.assert_array_equal(np.asarray(layer.data), data)


def _write_npy(path):
    np.save(path, np.arange(3 * 20 * 16, dtype=np.uint16).reshape(3, 20, 16))


def _write_zarr(path):
    import zarr

    zarr.create_array(str(path), shape=(3, 20, 16), dtype="uint16", chunks=(1, 20, 16))[:] = np.arange(
        3 * 20 * 16, dtype=np.uint16
    ).reshape(3, 20, 16)


def _write_pgm(path):
    from PIL import Image

    Image.fromarray(np.arange(20 * 16, dtype=np.uint16).reshape(20, 16) * 100).save(path)


@pytest.mark.parametrize(
    ("name", "writer", "shape"),
    [("vol.npy", _write_npy, (3, 20, 16)), ("vol.zarr", _write_zarr, (3, 20, 16)), ("b.pgm", _write_pgm, (20, 16))],
)
def test_reader_opens_other_oct_formats(make_napari_viewer, tmp_path, name, writer, shape):
    path = tmp_path / name
    writer(path)
    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pixel size unknown in these formats
        [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.__class__.__name__ == "Image" and not layer.rgb
    assert layer.data.shape == shape
    assert layer.metadata["pixel_size_known"] is False and tuple(layer.scale) == (1.0,) * len(shape)
    if name.endswith(".pgm"):
        assert np.asarray(layer.data).dtype == np.uint16 and int(np.asarray(layer.data).max()) == 31900


def test_reader_opens_folder_of_bscans(make_napari_viewer, tmp_path):
    from skimage.io import imsave

    folder = tmp_path / "bscans"
    folder.mkdir()
    for i in (1, 2, 10):
        imsave(folder / f"b{i}.png", np.full((20, 16), i, np.uint8), check_contrast=False)
    viewer = make_napari_viewer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [layer] = viewer.open(str(folder), plugin=PLUGIN)
    assert layer.data.shape == (3, 20, 16)
    assert [int(np.asarray(layer.data[k])[0, 0]) for k in range(3)] == [1, 2, 10]  # natural sort
    assert layer.metadata["pixel_size_known"] is False
    assert any("pixel size" in str(w.message) for w in caught)


def test_reader_opens_rgb_image(make_napari_viewer, tmp_path):
    from skimage.io import imsave

    path = tmp_path / "biopsy.png"
    rgb = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    imsave(path, rgb, check_contrast=False)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.rgb and layer.data.shape == (30, 40, 3)


def test_reader_declines_unknown_file(tmp_path):
    from skinseg._napari._reader import get_reader

    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert get_reader(str(path)) is None
    assert get_reader([str(path), str(path)]) is None


def test_labels_writer_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, labels = viewer.open_sample(PLUGIN, "oct")
    path = tmp_path / "layers.ome.tif"
    written = labels.save(str(path), plugin=PLUGIN)
    assert written == [str(path)]
    back = io.read_labels(str(path))
    np.testing.assert_array_equal(back.data, labels.data)
    np.testing.assert_allclose(back.pixel_size_um, labels.scale)
    assert back.metadata["class_table"] == OCT_CLASSES
    [reopened] = viewer.open(str(path), plugin=PLUGIN)
    assert reopened.__class__.__name__ == "Labels"
    np.testing.assert_allclose(reopened.scale, labels.scale)


def test_set_pixel_size_widget(make_napari_viewer):
    from skinseg._napari._pixel_size import set_pixel_size

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 30, 20), np.uint16), name="raw")
    labels = viewer.add_labels(np.zeros((4, 30, 20), np.uint8), name="raw labels")
    other = viewer.add_image(np.zeros((10, 10)), name="other")
    set_pixel_size(viewer, image, 12.0, 2.5, 8.0, same_shape_layers=True)
    np.testing.assert_allclose(image.scale, (12.0, 2.5, 8.0))
    np.testing.assert_allclose(labels.scale, (12.0, 2.5, 8.0))
    np.testing.assert_allclose(other.scale, (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        set_pixel_size(viewer, image, 0.0, 2.5, 8.0)


def test_reader_error_names_the_file(make_napari_viewer, tmp_path):
    path = tmp_path / "cut.tif"
    _write_ome(path, np.ones((4, 40, 30), np.uint16), (12.0, 2.5, 8.0))
    path.write_bytes(path.read_bytes()[:600])  # truncated: pixel data cut off
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as info:
        viewer.open(str(path), plugin=PLUGIN)
    message = "".join(str(e) for e in (info.value, info.value.__cause__) if e is not None)
    assert "cut.tif" in message and "truncated" in message.lower()
    assert len(viewer.layers) == 0
