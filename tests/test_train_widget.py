"""The "Train segmentation model" widget: pairs, sets, live training, Stop, Use this model, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES
from skinseg.models.files import ModelInfo, read_model_info, save_model
from skinseg.synth.oct import oct_phantom

pytestmark = pytest.mark.napari

TINY = {"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [4, 8], "strides": [2]}


@pytest.fixture
def phantom():
    return oct_phantom((6, 96, 64), seed=3)


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    folder = tmp_path / "user models"
    monkeypatch.setenv("SKINSEG_MODEL_DIR", str(folder))
    return folder


def _layers(phantom):
    import napari

    from skinseg._napari._layers import labels_layer

    image, labels = phantom.to_image_data()
    data, kwargs, _ = labels_layer(labels.data.copy(), image.pixel_size_um, OCT_CLASSES, "truth")
    return napari.layers.Image(image.data, scale=image.pixel_size_um, name="scan"), napari.layers.Labels(data, **kwargs)


def _tiny_model(path, phantom):
    info = ModelInfo(
        name="tiny", task="oct-layers", architecture="monai.UNet", arguments=TINY, in_channels=1,
        class_table=OCT_CLASSES, normalisation={"kind": "percentile", "low": 1.0, "high": 99.5},
        pixel_size_um=phantom.pixel_size_um[1:],
    )
    return save_model(path, info.build(), info)


def _widget(viewer, phantom, tmp_path):
    """A Train widget on the phantom, starting from a tiny model file, fast settings."""
    from skinseg._napari._train_widget import TrainWidget

    image, labels = _layers(phantom)
    viewer.add_layer(image)
    viewer.add_layer(labels)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget._image_in.value, widget._labels_in.value = viewer.layers["scan"], viewer.layers["truth"]
    widget._start_model.value = "model file…"
    widget._start_file.value = _tiny_model(tmp_path / "tiny.safetensors", phantom)
    widget._patch.value, widget._batch.value, widget._device.value = 64, 4, "cpu"
    widget._output.value = tmp_path / "out" / "tuned.safetensors"
    return widget


def _train(qtbot, widget, timeout=60000):
    widget.start()
    assert widget.worker is not None, widget._status.value
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


# --- logic, no window ---------------------------------------------------------------
def test_class_table_from_labels_metadata_or_choice(phantom):
    from skinseg._napari import _train_logic as logic
    from skinseg.errors import SkinsegInputError

    image, labels = _layers(phantom)
    assert logic.class_table_of(labels) == OCT_CLASSES
    assert logic.class_table_of(labels, "nerves") == NERVE_CLASSES
    labels.metadata = {}
    with pytest.raises(SkinsegInputError, match="'truth' carries no class table"):
        logic.class_table_of(labels)


def test_pairs_snapshot_chosen_slices_and_check_layers(phantom):
    import napari

    from skinseg._napari import _train_logic as logic
    from skinseg.errors import SkinsegInputError
    from skinseg.train import TrainConfig

    image, labels = _layers(phantom)
    pair = logic.make_pair(image, labels, OCT_CLASSES, slices=[2])
    assert pair.annotated().shape == (1, 96, 64) and pair.pixel_size_um == tuple(image.scale[1:])
    np.testing.assert_array_equal(pair.annotated()[0], phantom.labels[2])
    labels.data[2] = 0  # painting on after adding changes nothing in the set
    assert pair.annotated().shape[0] == 1
    summary = logic.pairs_summary([pair, logic.make_pair(image, labels, OCT_CLASSES)], OCT_CLASSES)
    assert summary.startswith("2 pair(s), 6 slice(s)")
    assert f"epidermis {int((phantom.labels[2] == 4).sum() + (phantom.labels[[0, 1, 3, 4, 5]] == 4).sum()):,}" in summary
    with pytest.raises(SkinsegInputError, match="nothing is painted in slice 2"):
        logic.make_pair(image, labels, OCT_CLASSES, slices=[2])
    with pytest.raises(SkinsegInputError, match=r"'scan' \(6, 96, 64\) and labels layer 'other'"):
        logic.make_pair(image, napari.layers.Labels(np.zeros((6, 96, 60), np.uint8), name="other"), OCT_CLASSES)
    with pytest.raises(SkinsegInputError, match=r"values \[3, 4, 5, 6\].*'biopsy-nerves'"):
        logic.make_pair(image, labels, NERVE_CLASSES)
    coarse = napari.layers.Image(image.data, scale=np.asarray(image.scale) * 2, name="coarse")
    with pytest.raises(SkinsegInputError, match=r"'coarse \+ truth': pixels of .* far from .* of 'scan \+ truth'"):
        logic.TrainRequest(OCT_CLASSES, Path("unused.safetensors"), TrainConfig(),
                           (pair, logic.make_pair(coarse, labels, OCT_CLASSES)))


def test_current_slice_follows_world_coordinates(phantom):
    from skinseg._napari import _train_logic as logic

    _, labels = _layers(phantom)
    step = labels.scale[0]
    assert logic.current_slice(labels, (4 * step, 0.0, 0.0)) == 4
    assert logic.current_slice(labels, (99 * step, 0.0, 0.0)) == 5  # clipped to the stack


def test_scratch_training_reports_epochs_and_stops_when_asked(phantom, tmp_path):
    import queue

    from skinseg import progress
    from skinseg._napari import _train_logic as logic
    from skinseg.train import TrainConfig

    image, labels = _layers(phantom)
    stop = threading.Event()

    class StopAfterTwo(queue.Queue):
        def put(self, report, *args, **kwargs):
            super().put(report, *args, **kwargs)
            if report.epoch == 2:
                stop.set()

    request = logic.TrainRequest(
        OCT_CLASSES, tmp_path / "scratch.safetensors", TrainConfig(epochs=50, patch=(64, 64), batch_size=4, device="cpu"),
        (logic.make_pair(image, labels, OCT_CLASSES),), start=None, arguments=TINY, val_fraction=0.34,
    )
    reports = StopAfterTwo()
    assert progress.run(logic.run_training(request, stop, reports)) == request.output
    curves = logic.Curves()
    assert curves.take(reports) == 2 and curves.epochs == [1, 2] and reports.empty()
    assert set(curves.dice) == set(OCT_CLASSES.names) and len(curves.val_loss) == 2
    training = read_model_info(request.output).training
    assert training["stopped"] == "interrupted" and training["epochs_run"] == 2
    assert training["started_from"] == "scratch" and training["data"]["validation"] == 2


def test_start_model_and_default_output(user_models, tmp_path):
    from datetime import datetime

    from skinseg._napari import _train_logic as logic
    from skinseg.models.registry import BUILTIN_DIR
    from skinseg.train import TrainConfig

    output = logic.default_output("scan + truth", datetime(2026, 1, 2, 3, 4, 5))
    assert output == user_models / "scan_truth-20260102-030405.safetensors"
    request = logic.TrainRequest(OCT_CLASSES, output, TrainConfig())
    assert request.start_file().parent == BUILTIN_DIR
    assert logic.TrainRequest(OCT_CLASSES, output, TrainConfig(), start=None).start_file() is None
    # the built-in start model is the one of the labels' task
    nerves = logic.TrainRequest(NERVE_CLASSES, output, TrainConfig())
    assert nerves.start_file() == BUILTIN_DIR / "biopsy_nerves.safetensors"
    user_models.mkdir()
    (user_models / "mine.safetensors").write_bytes(b"older model")
    (tmp_path / "mine.safetensors").write_bytes(b"new model")
    copy = logic.to_user_models(tmp_path / "mine.safetensors")
    assert copy == user_models / "mine-2.safetensors" and copy.read_bytes() == b"new model"
    assert (user_models / "mine.safetensors").read_bytes() == b"older model"
    assert logic.to_user_models(copy) == copy


def test_curves_render_in_class_colours():
    from skinseg._napari._train_logic import Curves
    from skinseg._napari._train_plot import render_curves

    curves = Curves([1, 2, 3], [1.0, 0.8, 0.7], [0.9, 0.85, 0.8], {"background": [0.9] * 3, "dermis": [0.5, 0.7, 0.9]})
    image = render_curves(curves, OCT_CLASSES, (400, 300))
    assert image.shape == (300, 400, 4) and image.dtype == np.uint8
    dermis = np.array([0x31, 0xA3, 0x54])
    assert (np.abs(image[..., :3].astype(int) - dermis).sum(-1) == 0).sum() > 100
    empty = render_curves(Curves(), OCT_CLASSES, (400, 300))
    assert (np.abs(empty[..., :3].astype(int) - dermis).sum(-1) == 0).sum() == 0


# --- the widget in a viewer ---------------------------------------------------------
def test_add_slices_to_a_training_set_folder_and_train_from_it(qtbot, make_napari_viewer, phantom, tmp_path):
    from skinseg.train import TrainingSet

    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    widget._folder.value = tmp_path / "my set"
    assert "new, created on the first add" in widget._contents.value
    viewer.dims.set_point(0, 3 * viewer.layers["truth"].scale[0])
    widget.add_current_slice()
    assert "added 1 annotated slice(s)" in widget._status.value
    assert "1 annotated slice(s) in 1 pair(s)" in widget._contents.value and not widget.pairs
    widget.add_annotated_slices()  # slice 3 again replaces the first add, which is backed up
    info = TrainingSet.open(tmp_path / "my set").info()
    assert (info.n_slices, info.class_table) == (6, OCT_CLASSES)
    assert f"{info.pixels_per_class['epidermis']:,}" in widget._contents.value
    assert any((tmp_path / "my set" / "backups").iterdir())
    widget._epochs.value = 2
    _train(qtbot, widget)
    training = read_model_info(widget.model_path).training
    assert training["epochs_run"] == 2 and training["data"]["sources"] == ["scan + truth"]
    assert training["data"]["slices"] == 6


def test_surface_aligned_recipe_from_the_widget(qtbot, make_napari_viewer, phantom, tmp_path):
    """The aligned recipe: its settings in the controls, a set kept with context B-scans,
    and a model that records the flattening and neighbour channels for inference."""
    from skinseg._napari import _train_logic as logic
    from skinseg.errors import SkinsegInputError
    from skinseg.segment.engine import segment
    from skinseg.train import ALIGNED_INPUT, ALIGNED_UNET, TrainConfig, TrainingSet

    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    widget._folder.value = tmp_path / "aligned set"
    widget.add_current_slice()  # slice 0: its neighbour 1 is kept as context
    assert TrainingSet.open(tmp_path / "aligned set").context == logic.OCT_CONTEXT == 1
    widget._folder.line_edit.value = ""  # the user empties the field: slices kept in memory
    assert widget.folder() is None
    widget.add_annotated_slices()
    widget._start_model.value = logic.ALIGNED
    assert not widget._patch.visible and widget._rate.value == 2e-3 and widget._epochs.value == 150
    request = widget.request()
    assert request.aligned and request.start is None and request.config.patch == (160, 512)
    assert request.config.weight_average > 0
    widget._epochs.value, widget._batch.value = 1, 2
    _train(qtbot, widget)
    info = read_model_info(widget.model_path)
    assert info.input == ALIGNED_INPUT and info.in_channels == 3
    assert info.arguments["channels"] == ALIGNED_UNET["channels"]
    assert info.pixel_size_um == pytest.approx(phantom.pixel_size_um[1:])
    assert segment(phantom.image, widget.model_path, device="cpu").labels.shape == phantom.image.shape
    with pytest.raises(SkinsegInputError, match="surface-aligned training is for OCT layers"):
        logic.TrainRequest(NERVE_CLASSES, tmp_path / "n.safetensors", TrainConfig(), start=None, aligned=True)
    with pytest.raises(SkinsegInputError, match="from scratch"):
        logic.TrainRequest(OCT_CLASSES, tmp_path / "o.safetensors", TrainConfig(), aligned=True)


def test_train_plots_live_and_uses_the_model(qtbot, make_napari_viewer, phantom, tmp_path, user_models):
    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    widget._epochs.value = 3
    viewer.dims.set_point(0, 3 * viewer.layers["truth"].scale[0])
    widget.add_current_slice()
    assert [p.annotated().shape[0] for p in widget.pairs] == [1]
    np.testing.assert_array_equal(widget.pairs[0].annotated()[0], phantom.labels[3])
    widget.add_annotated_slices()
    assert widget._contents.value.startswith("2 pair(s), 7 slice(s)")
    drawn = []
    widget.plot.show_curves = lambda curves, table: drawn.append(list(curves.epochs))
    _train(qtbot, widget)
    assert drawn[-1] == [1, 2, 3] and len(widget.curves.dice["epidermis"]) == 3
    assert widget.model_path == tmp_path / "out" / "tuned.safetensors"
    assert read_model_info(widget.model_path).training["epochs_run"] == 3
    assert widget._status.value.startswith("Done (") and widget._use.enabled
    widget.use_model()  # no Segment widget open: one is docked, the model copied and selected
    from skinseg._napari._segment_widget import SegmentWidget

    segment = [w for w in viewer.window.dock_widgets.values() if isinstance(w, SegmentWidget)]
    assert len(segment) == 1 and (user_models / "tuned.safetensors").is_file()
    assert segment[0].model_spec().path == user_models / "tuned.safetensors"
    assert segment[0]._method.value.startswith("tuned (user:")
    widget.use_model()  # the file already in the user folder is used as is; the open widget is reused
    assert sum(isinstance(w, SegmentWidget) for w in viewer.window.dock_widgets.values()) == 1
    assert sorted(p.name for p in user_models.iterdir()) == ["tuned.safetensors"]


def test_stop_keeps_the_best_model(qtbot, make_napari_viewer, phantom, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    widget._epochs.value, widget._patience.value = 200, 200
    widget.add_annotated_slices()
    widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.epochs) >= 2, timeout=60000)
    widget.stop()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    training = read_model_info(widget.model_path).training
    assert training["stopped"] == "interrupted" and 2 <= training["epochs_run"] < 200
    assert training["best_epoch"] >= 1 and widget._train.enabled and "stopped by you" in widget._status.value


def test_errors_show_in_status_and_keep_the_set(qtbot, make_napari_viewer, phantom, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    _train(qtbot, widget)  # nothing added yet
    assert "training set is empty" in widget._status.value
    widget.add_annotated_slices()
    viewer.add_labels(np.zeros((6, 96, 50), np.uint8), name="wrong size")
    widget._labels_in.value = viewer.layers["wrong size"]
    widget.add_annotated_slices()
    assert "'wrong size' carries no class table" in widget._status.value
    widget._task.value = "OCT layers"
    widget.add_annotated_slices()
    assert "differ in shape" in widget._status.value and len(widget.pairs) == 1
    viewer.layers["truth"].data[1, 0, 0] = 9
    widget._labels_in.value = viewer.layers["truth"]
    widget.add_annotated_slices()
    assert "values [9]" in widget._status.value and len(widget.pairs) == 1
    viewer.layers["truth"].data[1, 0, 0] = phantom.labels[1, 0, 0]
    scan = viewer.layers["scan"]
    widget._image_in.value = viewer.add_image(scan.data, scale=np.asarray(scan.scale) * 2, name="coarse")
    widget.add_annotated_slices()  # the same labels on pixels twice as large: refused, not resampled
    assert "far from" in widget._status.value and len(widget.pairs) == 1
    widget._image_in.value = scan
    # nerve labels, but the start model predicts OCT layers
    viewer.add_labels((phantom.labels == 4).astype(np.uint8), name="nerves")
    widget._labels_in.value, widget._task.value = viewer.layers["nerves"], "nerves"
    widget.pairs.clear()
    widget.add_annotated_slices()
    _train(qtbot, widget)
    assert "this model is for 'oct-layers', not 'biopsy-nerves'" in widget._status.value and widget._train.enabled and len(widget.pairs) == 1
    assert not (tmp_path / "out").exists()


def test_window_stays_responsive_while_training(qtbot, make_napari_viewer, phantom, tmp_path):
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    widget = _widget(viewer, phantom, tmp_path)
    widget._epochs.value, widget._patience.value = 16, 100  # long enough to watch on a quiet machine
    widget.add_annotated_slices()
    ticks = []
    timer = QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    qtbot.wait(100)  # ticking before Train is clicked: the click's own work counts too
    _train(qtbot, widget)
    timer.stop()
    gaps = np.diff(ticks)
    print(f"largest gap between 20 ms ticks: {gaps.max() * 1000:.0f} ms over {len(ticks)} ticks")
    assert len(widget.curves.epochs) == 16 and len(ticks) > 20
    assert gaps.max() <= 0.2, f"event loop blocked for {gaps.max() * 1000:.0f} ms"
