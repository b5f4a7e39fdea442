"""The "Count nerve crossings" widget in a real viewer: layers, live count, recount, export, errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.measure.crossings import find_crossings
from skinseg.synth.biopsy import biopsy_phantom

pytestmark = pytest.mark.napari
PLUGIN = "napari-skinseg"
SHAPE = (400, 600)
PX = 0.5


@pytest.fixture(scope="module")
def phantom():
    return biopsy_phantom(SHAPE, PX, seed=4, stain="dab")


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Count nerve crossings")
    widget.reset_choices()
    return widget


def _count(qtbot, widget, action="start"):
    getattr(widget, action)()
    assert widget.worker is not None, widget._status.value
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


@pytest.fixture
def counted(make_napari_viewer, qtbot, phantom):
    """A viewer with the phantom image (µm scale) counted by the default methods."""
    from skinseg._napari._layers import image_layer

    viewer = make_napari_viewer()
    data, kwargs, _ = image_layer(phantom.to_image_data(), "biopsy")
    viewer.add_image(data, **kwargs)
    widget = _dock(viewer)
    assert widget._pixel_size.value == PX and "unknown" not in widget._status.value
    _count(qtbot, widget)
    return viewer, widget


def _density(widget, count):
    r = widget.session.result
    return count / r.surface_length_mm, count / r.dej_length_mm


def test_count_adds_layers_at_um_scale(counted, phantom):
    viewer, widget = counted
    tissue, nerves = viewer.layers["biopsy tissue"], viewer.layers["biopsy nerves"]
    boundary, points = viewer.layers["biopsy boundary band"], viewer.layers["biopsy crossings"]
    for layer in (tissue, nerves, boundary, points):
        np.testing.assert_allclose(layer.scale, (PX, PX))
        assert [str(u) for u in layer.units] == ["micrometer"] * 2
    assert tissue.metadata["class_table"] == TISSUE_CLASSES.to_dict()
    assert nerves.metadata["class_table"] == NERVE_CLASSES.to_dict()
    assert tissue.features["class"].tolist() == TISSUE_CLASSES.names
    assert tissue.data.shape == nerves.data.shape == boundary.data.shape == SHAPE
    assert np.mean(tissue.data == phantom.tissue) > 0.9  # the image was segmented, not a stand-in
    # the points are the crossings of the shown masks, and the headline counts them
    want = find_crossings(tissue.data, nerves.data, PX)
    np.testing.assert_allclose(points.data, want.points)
    n = len(points.data)
    per_surface, per_dej = _density(widget, n)
    assert widget._count.value.startswith(f"{n} crossings")
    assert f"{per_surface:.2f} /mm of epidermis" in widget._count.value
    assert f"{per_dej:.2f} /mm of DEJ" in widget._count.value
    assert widget._status.value.startswith("Done: classical")


def test_editing_points_updates_count_live_and_export_has_edits(counted, tmp_path):
    viewer, widget = counted
    points = viewer.layers["biopsy crossings"]
    n = len(points.data)
    points.add([[123.0, 321.0]])
    per_surface, _ = _density(widget, n + 1)
    assert widget._count.value.startswith(f"{n + 1} crossings")
    assert f"{per_surface:.2f} /mm" in widget._count.value
    points.selected_data = {0}
    points.remove_selected()
    assert widget._count.value.startswith(f"{n} crossings")
    kept = np.asarray(points.data)

    widget.export(tmp_path)
    with open(tmp_path / "crossings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "summary.csv", newline="") as fh:
        [summary] = list(csv.DictReader(fh))
    got = np.array([[float(r[k]) for k in ("row", "col", "y_um", "x_um")] for r in rows]).reshape(-1, 4)
    np.testing.assert_allclose(got[:, :2], kept)  # the edited points, not the originals
    assert [123.0, 321.0] in got[:, :2].tolist()
    np.testing.assert_allclose(got[:, 2:], kept * PX)
    assert int(summary["count"]) == n
    assert float(summary["ienfd_per_mm"]) == pytest.approx(_density(widget, n)[0])
    assert float(summary["epidermis_length_mm"]) == pytest.approx(widget.session.result.surface_length_mm)
    assert summary["rule"] == "skeleton" and float(summary["pixel_size_um"]) == PX


def test_recount_uses_edited_labels(counted, qtbot, phantom):
    viewer, widget = counted
    tissue, nerves = viewer.layers["biopsy tissue"], viewer.layers["biopsy nerves"]
    tissue.data, nerves.data = phantom.tissue.copy(), phantom.nerves.copy()  # "corrected" by hand
    _count(qtbot, widget, "recount")
    truth = find_crossings(phantom.tissue, phantom.nerves, PX)
    assert truth.count >= 2
    np.testing.assert_allclose(viewer.layers["biopsy crossings"].data, truth.points)
    assert widget._count.value.startswith(f"{truth.count} crossings")
    # erase the fibre under the first crossing, as with the eraser, and recount
    r, c = np.round(truth.points[0]).astype(int)
    fibre = phantom.fibre_labels[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].max()
    assert fibre > 0
    edited = nerves.data.copy()
    edited[phantom.fibre_labels == fibre] = 0
    nerves.data = edited
    _count(qtbot, widget, "recount")
    assert len(viewer.layers["biopsy crossings"].data) < truth.count
    assert widget.session.result.count == len(viewer.layers["biopsy crossings"].data)
    nerves.data = np.zeros((10, 10), np.uint8)  # no longer the image's nerves
    widget.recount()
    assert widget.worker is None and "count the image again" in widget._status.value


def test_bad_input_is_shown_in_the_status_and_cancel_adds_nothing(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    widget.start()
    assert widget.worker is None and "choose the RGB" in widget._status.value
    grey = viewer.add_image(phantom.image[..., 0], name="grey", scale=(PX, PX))
    widget.reset_choices()
    widget._image_in.value = grey
    widget.start()
    assert widget.worker is None and "'grey' is not an RGB image" in widget._status.value
    rgb = viewer.add_image(phantom.image, name="rgb")  # no scale: pixel size unknown
    widget.reset_choices()
    widget._image_in.value = rgb
    assert widget._pixel_size.value == 1.0 and "pixel size unknown" in widget._status.value
    widget._pixel_size.value = 0.0
    widget.start()
    assert widget.worker is None and "pixel size 0.0 µm is not valid" in widget._status.value
    widget._pixel_size.value = PX
    widget.start()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert [layer.name for layer in viewer.layers] == ["grey", "rgb"]
    assert widget._status.value == "Cancelled." and widget._run.enabled and not widget._export.enabled
    np.testing.assert_allclose(rgb.scale, (PX, PX))  # the pixel size set is the layer's now


def test_a_trained_model_is_selected_where_it_runs(make_napari_viewer, tmp_path, monkeypatch):
    """"Use this model" of the Train widget: a nerve model goes to Count nerve crossings."""
    from skinseg.errors import SkinsegInputError
    from skinseg.models.files import ModelInfo, save_model
    from skinseg._napari._train_widget import TrainWidget

    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(tmp_path / "models"))
    info = ModelInfo(name="my nerves", task="biopsy-nerves", architecture="hed",
                     arguments={"channels": [4, 8], "in_channels": 3, "out_channels": 2}, in_channels=3,
                     class_table=NERVE_CLASSES, normalisation={"kind": "fixed", "low": 0, "high": 255})
    path = save_model(tmp_path / "nerves.safetensors", info.build(), info)
    viewer = make_napari_viewer()
    train = TrainWidget(viewer)
    crossings = train.using_widget("biopsy-nerves")  # none open: one is docked
    crossings.use_model(path)
    assert crossings.method("nerves").path == path and crossings.method("tissue") == "classical"
    assert train.using_widget("biopsy-tissue") is crossings  # the open one is reused
    oct_info = ModelInfo(name="oct", task="oct-layers", architecture="monai.UNet",
                         arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [2, 4],
                                    "strides": [2]}, in_channels=1, class_table=OCT_CLASSES,
                         normalisation={"kind": "percentile", "low": 1, "high": 99.5})
    wrong = save_model(tmp_path / "oct.safetensors", oct_info.build(), oct_info)
    with pytest.raises(SkinsegInputError, match="not for biopsy tissue or nerves"):
        crossings.use_model(wrong)


def test_method_lists_follow_the_user_model_folder(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A model trained after the widget opened shows up when the user opens the list."""
    from qtpy.QtCore import Qt

    from skinseg.models.files import ModelInfo, save_model

    def nerve_model(path, name):
        info = ModelInfo(name=name, task="biopsy-nerves", architecture="hed",
                         arguments={"channels": [4, 8], "in_channels": 3, "out_channels": 2}, in_channels=3,
                         class_table=NERVE_CLASSES, normalisation={"kind": "fixed", "low": 0, "high": 255})
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_model(path, info.build(), info)

    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(tmp_path / "models"))
    widget = _dock(make_napari_viewer())
    nerves, tissue = widget._method["nerves"], widget._method["tissue"]
    picked = nerve_model(tmp_path / "elsewhere" / "picked.safetensors", "picked")
    widget.use_model(picked)  # a file outside the folder, as "Use this model" adds it
    label = nerves.value
    tissue_before = list(tissue.choices)
    nerve_model(tmp_path / "models" / "later.safetensors", "trained later")
    assert "later (user: trained later)" not in nerves.choices
    qtbot.mouseClick(nerves.native, Qt.MouseButton.LeftButton)
    nerves.native.hidePopup()
    assert list(nerves.choices)[-3:] == ["later (user: trained later)", label, "model file…"]
    assert nerves.value == label and widget.method("nerves").path == picked  # the selection stays
    qtbot.mouseClick(tissue.native, Qt.MouseButton.LeftButton)
    tissue.native.hidePopup()
    assert list(tissue.choices) == tissue_before  # a nerve model is not a tissue method
