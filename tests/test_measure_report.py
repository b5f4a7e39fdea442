"""``thickness.png`` and its drawing pieces, summary lines, and surface meshes from depth maps."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.figures import new_figure
from skinseg.measure import report
from skinseg.measure.surfaces import depth_map_mesh
from skinseg.measure.thickness import measure_epidermis


def _labels(n_bscans: int, width: int = 20) -> np.ndarray:
    """Surface at row 5, DEJ (top of dermis) at 12 + B-scan index; A-scan 3 of B-scan 0 bare."""
    labels = np.zeros((n_bscans, 40, width), np.uint8)
    for b in range(n_bscans):
        labels[b, 5:] = OCT_CLASSES.value_of("epidermis")
        labels[b, 12 + b :] = OCT_CLASSES.value_of("dermis")
    labels[0, :, 3] = 0
    return labels


def test_colour_range():
    assert report.colour_range(np.full((2, 3), np.nan)) == (0.0, 1.0)
    assert report.colour_range(np.array([4.0, 4.0, np.nan])) == (3.5, 4.5)
    lo, hi = report.colour_range(np.arange(101.0))
    assert (lo, hi) == pytest.approx((2.0, 98.0))


def test_summary_rows_and_headline():
    m = measure_epidermis(_labels(3), (10.0, 2.0, 5.0))
    rows = dict(report.summary_rows(m.summary))
    assert list(rows) == ["mean", "SD", "median", "P5", "P95", "min", "max", "coverage", "n"]
    assert rows["mean"] == f"{m.summary['thickness_mean_um']:.1f} µm"
    assert rows["coverage"] == f"{100 * 59 / 60:.1f} %" and rows["n"] == "59 of 60 A-scans"
    mean, sd = m.summary["thickness_mean_um"], m.summary["thickness_sd_um"]
    assert f"{mean:.1f} ± {sd:.1f} µm" in report.headline(m.summary)
    empty = measure_epidermis(np.zeros((2, 10, 4), np.uint8), (1.0, 1.0, 1.0))
    assert dict(report.summary_rows(empty.summary))["mean"] == "–"


def test_histogram_counts_colours_and_marks():
    fig = new_figure(400, 300)
    ax = fig.add_subplot()
    values = np.array([10.0, 10.0, 12.0, 20.0, np.nan])
    report.draw_histogram(ax, values, (10.0, 20.0), min_bin_um=1.0)
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 4  # NaN left out
    first, last = ax.patches[0].get_facecolor(), ax.patches[-1].get_facecolor()
    cmap = matplotlib.colormaps[report.COLORMAP]
    assert first == pytest.approx(cmap(0.0), abs=0.01) and last == pytest.approx(cmap(1.0), abs=0.01)
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
    assert lines == {"mean 13.0 µm": 13.0, "median 11.0 µm": 11.0}

    strip = fig.add_axes((0.1, 0.0, 0.8, 0.05), sharex=ax)
    report.draw_colour_strip(strip, (11.0, 15.0))  # map colours along the histogram's µm axis
    [image] = strip.images
    x0, x1 = ax.get_xlim()
    assert image.get_extent() == [x0, x1, 0.0, 1.0]
    colours = image.get_array()[0]
    np.testing.assert_allclose(colours[[0, -1]], [cmap(0.0), cmap(1.0)])  # beyond the range: end colours
    inside = colours[np.searchsorted(np.linspace(x0, x1, 256), 13.0)]
    np.testing.assert_allclose(inside, cmap(0.5), atol=0.03)
    report.draw_histogram(ax, np.array([np.nan]), (0.0, 1.0))
    assert not ax.patches and ax.texts[0].get_text() == "no A-scan measured"


def test_map_in_um_with_unmeasured_masked():
    m = measure_epidermis(_labels(4), (10.0, 2.0, 5.0))
    fig = new_figure(400, 300)
    image = report.draw_map(fig.add_subplot(), m, (10.0, 20.0))
    assert image.get_extent() == [0, 20 * 5.0, 4 * 10.0, 0]
    assert image.get_array().mask[0, 3] and not image.get_array().mask[1, 3]
    assert image.get_clim() == (10.0, 20.0)


@pytest.mark.parametrize("n_bscans", [1, 4])
def test_thickness_png_and_write_report(tmp_path, n_bscans):
    labels = _labels(n_bscans)
    m = measure_epidermis(labels[0] if n_bscans == 1 else labels, (2.0, 5.0) if n_bscans == 1 else (10.0, 2.0, 5.0))
    written = report.write_report(m, tmp_path)
    assert {k: p.name for k, p in written.items()} == {
        "summary": "summary.csv", "per_bscan": "per_bscan.csv", "json": "measurement.json", "png": "thickness.png",
    }  # fmt: skip
    pixels = imread(written["png"])
    assert pixels.shape[:2] == (560, 1400)
    assert pixels[..., :3].std() > 0.1  # something drawn


def test_mesh_vertices_and_faces():
    depth = np.array([[1.0, 2.0, 3.0], [1.5, np.nan, 3.5], [2.0, 2.0, 2.0]], np.float32)
    vertices, faces = depth_map_mesh(depth)
    assert vertices.shape == (8, 3) and vertices.dtype == np.float32
    np.testing.assert_array_equal(vertices[0], [0, 0.5, 0])  # boundary at depth 1 lies at voxel coordinate 0.5
    np.testing.assert_array_equal(vertices[3], [1, 1.0, 0])
    b, d, x = vertices.T.astype(int)
    assert not any((b == 1) & (x == 1))  # the NaN A-scan is left out
    # 4 blocks × 2 triangles, less each triangle touching the centre: 2 remain (top-left/bottom-right corners)
    assert faces.shape == (2, 3) and faces.dtype == np.int32
    corners = {tuple(sorted((int(b[i]), int(x[i])) for i in face)) for face in faces}
    assert corners == {((0, 0), (0, 1), (1, 0)), ((1, 2), (2, 1), (2, 2))}


def test_mesh_full_grid_single_bscan_and_bad_shape():
    vertices, faces = depth_map_mesh(np.zeros((4, 5)))
    assert len(vertices) == 20 and len(faces) == 2 * 3 * 4
    assert faces.max() == 19 and len(np.unique(faces)) == 20
    assert depth_map_mesh(np.zeros((1, 5)))[1].shape == (0, 3)
    with pytest.raises(SkinsegInputError, match="n_bscans, width"):
        depth_map_mesh(np.zeros(5))
