"""The "Segment skin layers" widget in a real viewer: classical, model file, cancel, bad layers."""

from __future__ import annotations

import numpy as np
import pytest

from skinseg.classes import OCT_CLASSES
from skinseg.models.files import ModelInfo, save_model
from skinseg.synth.oct import oct_phantom

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer_with_phantom(make_napari_viewer):
    viewer = make_napari_viewer()
    phantom = oct_phantom((6, 96, 64), seed=11)
    image, _ = phantom.to_image_data()
    viewer.add_image(image.data, name="scan", scale=image.pixel_size_um)
    return viewer, phantom


def _widget(viewer):
    from skinseg._napari._segment_widget import SegmentWidget

    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    return widget


def _run(qtbot, widget):
    widget.start()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


def test_classical_gives_labels_at_image_scale(qtbot, viewer_with_phantom):
    viewer, phantom = viewer_with_phantom
    widget = _widget(viewer)
    widget._method.value = next(k for k, e in widget._choices.models.items() if e.is_classical)
    _run(qtbot, widget)
    labels = viewer.layers["scan layers"]
    assert labels.data.shape == phantom.image.shape and labels.data.dtype == np.uint8
    np.testing.assert_allclose(labels.scale, viewer.layers["scan"].scale)
    assert set(np.unique(labels.data)) <= {0, 4, 6}
    assert labels.metadata["class_table"]["name"] == OCT_CLASSES.name
    assert widget._status.value.startswith("Done: classical")
    # a second run never overwrites the first (which the user may have corrected)
    labels.data[0, 0, 0] = 6
    _run(qtbot, widget)
    assert "scan layers [2]" in viewer.layers and viewer.layers["scan layers"].data[0, 0, 0] == 6


def test_model_file_with_uncertainty(qtbot, viewer_with_phantom, tmp_path):
    viewer, phantom = viewer_with_phantom
    info = ModelInfo(
        name="tiny", task="oct-layers", architecture="monai.UNet",
        arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [4, 8], "strides": [2]},
        in_channels=1, class_table=OCT_CLASSES, normalisation={"kind": "percentile", "low": 1.0, "high": 99.5},
        pixel_size_um=phantom.pixel_size_um[1:],
    )
    path = save_model(tmp_path / "tiny.safetensors", info.build(), info)
    widget = _widget(viewer)
    widget._method.value = "model file…"
    widget._model_file.value = path
    widget._uncertainty.value = True
    _run(qtbot, widget)
    assert viewer.layers["scan layers"].data.shape == phantom.image.shape
    uncertainty = viewer.layers["scan uncertainty"]
    assert uncertainty.data.shape == phantom.image.shape and float(np.nanmax(uncertainty.data)) > 0


def test_cancel_stops_without_layer(qtbot, make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(oct_phantom((64, 96, 64), seed=2).image, name="big")
    widget = _widget(viewer)
    widget._method.value = next(k for k, e in widget._choices.models.items() if e.is_classical)
    widget._batch.value = 1
    widget.start()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert "big layers" not in viewer.layers
    assert widget._run.enabled


def test_rgb_layer_is_refused_with_a_message(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 30, 3), np.uint8), name="photo", rgb=True)
    widget = _widget(viewer)
    widget.start()
    assert widget.worker is None and "photo" in widget._status.value and "RGB" in widget._status.value


def _oct_model(path, name):
    info = ModelInfo(
        name=name, task="oct-layers", architecture="monai.UNet",
        arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [2, 4], "strides": [2]},
        in_channels=1, class_table=OCT_CLASSES, normalisation={"kind": "percentile", "low": 1.0, "high": 99.5},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(path, info.build(), info)


def _open_list(qtbot, combo, key=None):
    """What the user does: click the drop-down (or press ``key`` on it), then close its list."""
    from qtpy.QtCore import Qt

    if key is None:
        qtbot.mouseClick(combo.native, Qt.MouseButton.LeftButton)
    else:
        qtbot.keyClick(combo.native, key)
    combo.native.hidePopup()
    return [str(c) for c in combo.choices]


def test_model_list_follows_the_user_model_folder(qtbot, make_napari_viewer, tmp_path, monkeypatch):
    from qtpy.QtCore import Qt

    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(tmp_path / "models"))
    widget = _widget(make_napari_viewer())
    combo = widget._method
    chosen = combo.value
    elsewhere = _oct_model(tmp_path / "elsewhere" / "picked.safetensors", "picked")
    widget.use_model(elsewhere)  # "Use this model" of the Train widget, a file outside the folder
    picked = combo.value
    assert picked.startswith("picked (file:")
    _oct_model(tmp_path / "models" / "trained_later.safetensors", "later")  # saved after the widget was made
    assert "trained_later (user: later)" not in combo.choices
    choices = _open_list(qtbot, combo)
    assert "trained_later (user: later)" in choices and picked in choices and choices[-1] == "model file…"
    assert combo.value == picked and widget.model_spec().path == elsewhere  # the selection stays
    combo.value = chosen
    _oct_model(tmp_path / "models" / "by_key.safetensors", "key")
    assert "by_key (user: key)" in _open_list(qtbot, combo, Qt.Key.Key_F4) and combo.value == chosen
    (tmp_path / "models" / "trained_later.safetensors").unlink()  # a model deleted meanwhile goes away
    assert "trained_later (user: later)" not in _open_list(qtbot, combo)
