"""The "Measure epidermis" widget in a real viewer: numbers, layers, live updates, errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from skinseg.classes import OCT_CLASSES
from skinseg.measure.report import colour_range
from skinseg.measure.thickness import measure_epidermis
from skinseg.synth.oct import oct_phantom

pytestmark = pytest.mark.napari
PLUGIN = "napari-skinseg"
STATS = ("n", "coverage", "thickness_mean_um", "thickness_sd_um", "thickness_median_um",
         "thickness_p5_um", "thickness_p95_um", "thickness_min_um", "thickness_max_um")  # fmt: skip


@pytest.fixture(scope="module")
def phantom():
    return oct_phantom((8, 96, 64), seed=3)


def _open(viewer, labels, pixel_size_um=None, name="layers"):
    """Add labels as the plugin's reader would, and dock the widget."""
    from skinseg._napari._layers import labels_layer

    data, kwargs, _ = labels_layer(labels, pixel_size_um or (1.0,) * labels.ndim, OCT_CLASSES, name)
    if pixel_size_um is None:
        kwargs.pop("scale")
    layer = viewer.add_labels(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure epidermis")
    return layer, widget


def _measure(qtbot, widget):
    widget.measure()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10000)


def _summary_equal(got, want):
    for key in STATS:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_measure_matches_library_with_um_layers_and_export(make_napari_viewer, qtbot, phantom, tmp_path):
    viewer = make_napari_viewer()
    labels, widget = _open(viewer, phantom.labels.copy(), phantom.pixel_size_um)
    widget._ri.value, widget._normal.value = 1.4, True
    _measure(qtbot, widget)

    want = measure_epidermis(phantom.labels, phantom.pixel_size_um, refractive_index=1.4, normal_correction=True)
    m = widget.session.measurement
    _summary_equal(m.summary, want.summary)
    assert widget._table.value["index"][0] == "mean"
    assert widget._table.value["data"][0] == [f"{want.summary['thickness_mean_um']:.1f} µm"]
    assert "±" in widget._status.value and "coverage" in widget._status.value

    thickness = viewer.layers["epidermal thickness (µm)"]
    np.testing.assert_array_equal(thickness.data, want.thickness_um)
    np.testing.assert_allclose(thickness.scale, (phantom.pixel_size_um[0], phantom.pixel_size_um[2]))
    assert [str(u) for u in thickness.units] == ["micrometer"] * 2
    np.testing.assert_allclose(thickness.contrast_limits, colour_range(want.thickness_um))
    lo, hi = thickness.contrast_limits
    assert f"{lo:.1f} µm" in widget._legend.value and f"{hi:.1f} µm" in widget._legend.value
    assert thickness.translate[1] > 64 * phantom.pixel_size_um[2]  # beside the labels, not over them
    assert len(widget._hist_ax.patches) > 3  # histogram bars drawn

    for name, depth_px in (("skin surface", want.surface_px), ("DEJ", want.dej_px)):
        surface = viewer.layers[name]
        assert surface.__class__.__name__ == "Surface"
        np.testing.assert_allclose(surface.scale, labels.scale)
        vertices = surface.data[0]
        assert len(vertices) == np.isfinite(depth_px).sum()
        b, d, x = vertices[0].astype(float)
        assert depth_px[int(b), int(x)] - 0.5 == pytest.approx(d)  # boundary between voxel rows

    written = widget.export(tmp_path)
    assert {p.name for p in written.values()} >= {"summary.csv", "per_bscan.csv", "measurement.json", "thickness.png"}
    with open(tmp_path / "summary.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["thickness_mean_um"]) == pytest.approx(want.summary["thickness_mean_um"])


def test_paint_updates_only_touched_bscans(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    labels, widget = _open(viewer, phantom.labels.copy(), phantom.pixel_size_um)
    _measure(qtbot, widget)
    before = widget.session.measurement.thickness_um.copy()

    k = 3
    rows = np.arange(96)[np.isin(labels.data[k, :, 20], [5, 6])]  # DEJ and dermis of A-scan 20
    labels.brush_size = 9
    labels.paint((k, rows[0] + 3, 20), OCT_CLASSES.value_of("epidermis"))  # brush over the DEJ band
    labels.data_setitem((np.full(96, 6), np.arange(96), np.full(96, 40)), 0)  # erase A-scan (6, :, 40)
    assert widget.pending == {k, 6}  # one batch, applied after the debounce
    qtbot.waitUntil(lambda: not widget.pending, timeout=5000)

    after = viewer.layers["epidermal thickness (µm)"].data
    fresh = measure_epidermis(labels.data, phantom.pixel_size_um)
    untouched = [i for i in range(8) if i not in (k, 6)]
    np.testing.assert_array_equal(after[untouched], before[untouched])
    assert not np.array_equal(after[k], before[k], equal_nan=True)
    np.testing.assert_array_equal(after[[k, 6]], fresh.thickness_um[[k, 6]])
    assert np.isnan(after[6, 40]) and widget.session.measurement.summary["coverage"] < 1.0
    _summary_equal(widget.session.measurement.summary, fresh.summary)
    assert len(viewer.layers["DEJ"].data[0]) == np.isfinite(fresh.dej_px).sum()

    labels.data = phantom.labels.copy()  # whole replacement: measured anew
    qtbot.waitUntil(lambda: widget.worker is None and widget.session.measurement.summary["coverage"] == 1.0,
                    timeout=10000)
    np.testing.assert_array_equal(viewer.layers["epidermal thickness (µm)"].data, before)


def test_single_bscan_labels(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    bscan = phantom.labels[2].copy()
    labels, widget = _open(viewer, bscan)  # no pixel size set
    _measure(qtbot, widget)
    want = measure_epidermis(bscan, (1.0, 1.0))
    _summary_equal(widget.session.measurement.summary, want.summary)
    assert viewer.layers["epidermal thickness (µm)"].data.shape == (1, 64)
    assert "skin surface" not in viewer.layers and "DEJ" not in viewer.layers  # surfaces are for 3-D
    assert "pixel size not set" in widget._status.value

    labels.paint((30, 10), OCT_CLASSES.value_of("epidermis"))
    qtbot.waitUntil(lambda: not widget.pending, timeout=5000)
    fresh = measure_epidermis(labels.data, (1.0, 1.0))
    np.testing.assert_array_equal(viewer.layers["epidermal thickness (µm)"].data, fresh.thickness_um)


def test_bad_input_gives_clear_message(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    _, widget = _open(viewer, phantom.labels[:2] + 3, name="nerves")  # values up to 9: not OCT layers
    _measure(qtbot, widget)
    assert "labels layer 'nerves'" in widget._status.value and "OCT class table" in widget._status.value
    assert widget.session is None and "epidermal thickness (µm)" not in viewer.layers

    viewer.layers["nerves"].data = phantom.labels[:2].copy()
    widget._ri.value = 0.0
    _measure(qtbot, widget)
    assert "refractive index must be a positive number" in widget._status.value

    viewer.add_image(np.zeros((2, 50, 64), np.float32), name="other scan")
    widget._image_in.value = viewer.layers["other scan"]
    widget.measure()
    assert "'other scan'" in widget._status.value and "does not match" in widget._status.value


def test_touched_bscans_from_paint_events():
    from skinseg._napari._measure_logic import touched_bscans

    class Atom:  # a masked edit as napari records it
        def __init__(self, key):
            self.slice_key = key

    setitem = ((np.array([7, 7, 0]), np.array([1, 2, 3]), np.array([0, 1, 2])), np.array([4, 4, 4]), 0)
    item = [Atom((slice(2, 4), slice(0, 9), slice(1, 5))), setitem]
    assert touched_bscans(item, (9, 20, 20)) == {0, 2, 3, 7}
    assert touched_bscans([Atom((5, slice(None), slice(None)))], (9, 20, 20)) == {5}
    assert touched_bscans([Atom((slice(None), slice(0, 3), slice(0, 3)))], (4, 20, 20)) == {0, 1, 2, 3}  # 3-D fill
    assert touched_bscans(item, (20, 20)) == {0}
