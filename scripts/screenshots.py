"""Retake the napari screenshots used in README.md and docs/ (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py

Each shot opens a sample through the plugin, as a person would from
File ▸ Open Sample ▸ napari-skinseg, and saves the whole window.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
PLUGIN = "napari-skinseg"


def _viewer() -> napari.Viewer:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.canvas.overlays.scale_bar.visible = True
    return viewer


def _save(viewer: napari.Viewer, path: Path) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


def shot_oct_sample(path: Path) -> None:
    viewer = _viewer()
    viewer.open_sample(PLUGIN, "oct")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Set pixel size (µm)")
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    viewer.reset_view()
    _save(viewer, path)


def shot_biopsy_sample(path: Path) -> None:
    viewer = _viewer()
    layers = viewer.open_sample(PLUGIN, "biopsy")
    layers[2].visible = True
    viewer.reset_view()
    _save(viewer, path)


def shot_measure_widget(path: Path) -> None:
    """OCT sample measured with refractive index 1.4: B-scan, thickness map beside it, widget."""
    from qtpy.QtWidgets import QApplication

    viewer = _viewer()
    viewer.open_sample(PLUGIN, "oct")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure epidermis")
    widget._ri.value = 1.4
    widget.measure()
    while widget.worker is not None:
        QApplication.processEvents()
    viewer.layers.selection.active = viewer.layers["epidermal thickness (µm)"]
    viewer.window._qt_window.resize(1600, 1000)
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    viewer.reset_view()
    _save(viewer, path)


def shot_segment_widget(path: Path) -> None:
    """OCT sample segmented by the default (classical) method, with the widget docked."""
    from qtpy.QtWidgets import QApplication

    viewer = _viewer()
    image, truth = viewer.open_sample(PLUGIN, "oct")
    truth.visible = False
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment skin layers")
    widget.start()
    while widget.worker is not None:
        QApplication.processEvents()
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    viewer.reset_view()
    _save(viewer, path)


def shot_crossings_widget(path: Path) -> None:
    """DAB biopsy sample counted by the default (classical) methods, with the widget docked."""
    from qtpy.QtWidgets import QApplication

    viewer = _viewer()
    for layer in viewer.open_sample(PLUGIN, "biopsy")[1:]:  # the truth: not what a user has
        viewer.layers.remove(layer)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Count nerve crossings")
    widget.start()
    while widget.worker is not None:
        QApplication.processEvents()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.reset_view()
    _save(viewer, path)


def shot_train_widget(path: Path) -> None:
    """Seven B-scans of the OCT sample added as corrected slices, the built-in model
    fine-tuned on them for a few epochs (in memory), curves shown, "Use this model" ready."""
    import tempfile

    from qtpy.QtWidgets import QApplication

    viewer = _viewer()
    viewer.window._qt_window.resize(1600, 1000)
    image, truth = viewer.open_sample(PLUGIN, "oct")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train segmentation model")
    widget._image_in.value, widget._labels_in.value = image, truth
    for b_scan in range(8, 64, 8):  # as a person would: go to a corrected B-scan, add it
        viewer.dims.set_point(0, b_scan * image.scale[0])
        widget.add_current_slice()
    widget._epochs.value, widget._batch.value, widget._patch.value = 6, 4, 128
    widget._output.value = Path(tempfile.mkdtemp()) / "oct_phantom-tuned.safetensors"
    widget.start()
    while widget.worker is not None or widget.plot.busy:
        QApplication.processEvents()
    viewer.reset_view()
    _save(viewer, path)


SHOTS = {
    "napari_oct_sample.png": shot_oct_sample,
    "napari_biopsy_sample.png": shot_biopsy_sample,
    "measure_widget.png": shot_measure_widget,
    "segment_widget.png": shot_segment_widget,
    "train_widget.png": shot_train_widget,
    "crossings_widget.png": shot_crossings_widget,
}


def main(names: list[str]) -> None:
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for name, shot in SHOTS.items():
        if not names or name in names:
            shot(DOCS_IMAGES / name)
            print(DOCS_IMAGES / name)


if __name__ == "__main__":
    main(sys.argv[1:])
