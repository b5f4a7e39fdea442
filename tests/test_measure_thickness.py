"""Epidermal thickness from OCT labels: µm maps, normal correction, edits, export, real masks."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write
from skinseg.io.image_data import ImageData
from skinseg.measure.summary import describe, write_measurement
from skinseg.measure.thickness import measure_epidermis

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MASKS = DATA / "skin-oct-face-dev" / "masks"


def layers(surface: np.ndarray, dej: np.ndarray, depth: int, sc_px: float = 0.0) -> np.ndarray:
    """Labels ``(*surface.shape[:-1], depth, width)`` from sub-pixel boundary depths.

    Background above ``surface``, stratum corneum for ``sc_px`` below it, epidermis down
    to ``dej``, dermis below; a row lies below a boundary at d when ``r + 0.5 >= d``.
    """
    r = np.arange(depth)[:, None] + 0.5
    s, d = surface[..., None, :], dej[..., None, :]
    labels = np.where(r >= s, 4, 0)
    labels = np.where((r >= s) & (r < s + sc_px), 3, labels)
    return np.where(r >= d, 6, labels).astype(np.uint8)


def flat(n: int = 3, depth: int = 80, width: int = 32) -> np.ndarray:
    return layers(np.full((n, width), 20.0), np.full((n, width), 50.0), depth, sc_px=5)


def test_flat_layers_give_exact_um_and_summary() -> None:
    m = measure_epidermis(flat(), (10.0, 2.0, 3.0))
    assert m.thickness_um.shape == (3, 32) and m.thickness_um.dtype == np.float32
    np.testing.assert_array_equal(m.thickness_um, 60.0)  # 30 px × 2 µm
    np.testing.assert_array_equal(m.sc_thickness_um, 10.0)
    np.testing.assert_array_equal(m.surface_depth_um, 40.0)
    np.testing.assert_array_equal(m.dej_depth_um, 100.0)
    assert m.map_pixel_size_um == (10.0, 3.0)
    s = m.summary
    assert (s["n"], s["n_ascans"], s["coverage"]) == (96, 96, 1.0)
    assert s["thickness_mean_um"] == s["thickness_p5_um"] == s["thickness_max_um"] == 60.0
    assert s["thickness_sd_um"] == 0.0
    assert [row["bscan"] for row in m.per_bscan] == [0, 1, 2]
    assert m.per_bscan[1]["thickness_median_um"] == 60.0 and m.per_bscan[1]["n"] == 32


def test_refractive_index_divides_axial_size() -> None:
    m = measure_epidermis(flat(), (10.0, 2.8, 3.0), refractive_index=1.4)
    np.testing.assert_allclose(m.thickness_um, 60.0, rtol=1e-6)
    assert m.axial_um == pytest.approx(2.0)


def test_single_bscan_gives_one_row_maps() -> None:
    m = measure_epidermis(flat(1)[0], (2.0, 3.0))
    assert m.thickness_um.shape == (1, 32)
    assert m.map_pixel_size_um == (3.0, 3.0)
    np.testing.assert_array_equal(m.thickness_um, 60.0)


def test_dej_band_centre_is_the_dej() -> None:
    labels = flat()
    labels[:, 48:52] = 5  # DEJ band rows 48..51: centre at depth 50
    m = measure_epidermis(labels, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(m.dej_depth_um, 50.0)
    np.testing.assert_array_equal(m.thickness_um, 30.0)


def tilted(slope_x: float, slope_y: float, thickness_px: float, shape: tuple[int, int, int]):
    """Parallel tilted layers; returns labels and the true thickness along the normal (px)."""
    n, depth, width = shape
    y, x = np.mgrid[0:n, 0:width].astype(float)
    surface = 30.0 + slope_x * x + slope_y * y
    labels = layers(surface, surface + thickness_px, depth)
    return labels, thickness_px / np.sqrt(1 + slope_x**2 + slope_y**2)


def test_normal_correction_on_strong_3d_tilt() -> None:
    # 0.8 px/px along the B-scan, 0.3 px per B-scan, with unequal pixel sizes (µm)
    sizes = (5.0, 2.0, 2.5)  # bscan spacing, axial, lateral
    labels, _ = tilted(0.8, 0.3, 40.0, (24, 200, 128))
    dzdx, dzdy = 0.8 * 2.0 / 2.5, 0.3 * 2.0 / 5.0  # physical slopes: about 33° of tilt
    truth = 40.0 * 2.0 / np.sqrt(1 + dzdx**2 + dzdy**2)
    straight = measure_epidermis(labels, sizes).summary["thickness_mean_um"]
    normal = measure_epidermis(labels, sizes, normal_correction=True).summary["thickness_mean_um"]
    assert abs(normal / truth - 1) < 0.02
    assert straight == pytest.approx(truth * np.sqrt(1 + dzdx**2 + dzdy**2), rel=0.01)
    assert straight / truth - 1 > 0.1  # straight-down is off by the tilt (1/cos)


def test_normal_correction_on_single_bscan_uses_1d_slope() -> None:
    labels, truth_px = tilted(1.0, 0.0, 30.0, (1, 200, 128))  # 45°
    m = measure_epidermis(labels[0], (1.0, 1.0), normal_correction=True)
    assert m.summary["thickness_mean_um"] == pytest.approx(truth_px, rel=0.02)
    m = measure_epidermis(labels[0], (1.0, 1.0))
    assert m.summary["thickness_mean_um"] == pytest.approx(30.0, rel=0.01)


def test_phantom_thickness_error_below_half_pixel() -> None:
    oct_phantom = pytest.importorskip("skinseg.synth.oct").oct_phantom
    ph = oct_phantom((8, 256, 128), seed=3, glass=True, gel=True)
    m = measure_epidermis(ph.to_image_data()[1])
    error_px = np.abs(m.thickness_um - ph.thickness_um) / ph.pixel_size_um[1]
    assert m.summary["coverage"] == 1.0
    assert error_px.mean() <= 0.5 and error_px.max() <= 1.0
    m14 = measure_epidermis(ph.labels, ph.pixel_size_um, refractive_index=1.4)
    np.testing.assert_allclose(m14.thickness_um, m.thickness_um / 1.4, rtol=1e-5)


@pytest.mark.parametrize("refractive_index", [1.0, 1.4])
def test_tilted_phantom_normal_correction_within_2_percent(refractive_index: float) -> None:
    synth = pytest.importorskip("skinseg.synth.oct")
    tilt = (0.3, 0.6)  # µm of (optical) depth per µm along the B-scans and the width
    anatomy = synth.OCTAnatomy(
        surface_um=400.0, tilt=tilt, rete_depth_um=0.0, undulation_um=0.0,
        curvature_um=0.0, epidermis_variation=0.0,
    )  # fmt: skip
    ph = synth.oct_phantom((16, 512, 96), seed=4, anatomy=anatomy)
    sec = np.sqrt(1 + (tilt[0] ** 2 + tilt[1] ** 2) / refractive_index**2)  # 1 / cos(tilt)
    truth = ph.thickness_um.mean() / refractive_index / sec  # parallel layers: normal distance
    kw = {"refractive_index": refractive_index}
    straight = measure_epidermis(ph.labels, ph.pixel_size_um, **kw).summary["thickness_mean_um"]
    normal = measure_epidermis(ph.labels, ph.pixel_size_um, normal_correction=True, **kw)
    assert normal.summary["thickness_mean_um"] == pytest.approx(truth, rel=0.02)
    assert straight == pytest.approx(truth * sec, rel=0.01)  # off by the tilt
    assert sec > 1.1


def soft_probabilities(surface: np.ndarray, dej: np.ndarray, depth: int, band: float = 0.0):
    """Class probabilities (7, ..., depth, width) with logistic edges at sub-pixel depths."""
    c = np.arange(depth)[:, None] + 0.5

    def step(edge: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(c - edge[..., None, :]) / 0.6))

    skin, dermis = step(surface), step(dej + band / 2)
    below_dej = step(dej - band / 2) if band else dermis
    p = np.zeros((7, *skin.shape), np.float32)
    p[0], p[4], p[5], p[6] = 1 - skin, skin - below_dej, below_dej - dermis, dermis
    return p


@pytest.mark.parametrize("band", [0.0, 3.0])
def test_subpixel_boundaries_from_probabilities(band: float) -> None:
    rng = np.random.default_rng(1)
    surface = rng.uniform(20, 30, (4, 48))
    dej = surface + rng.uniform(15, 25, (4, 48))
    p = soft_probabilities(surface, dej, 90, band)
    labels = p.argmax(axis=0).astype(np.uint8)
    m = measure_epidermis(labels, (1.0, 1.0, 1.0), probabilities=p)
    assert np.abs(m.surface_px - surface).max() < 0.05
    assert np.abs(m.dej_px - dej).max() < 0.05
    assert np.abs(m.thickness_um - (dej - surface)).mean() < 0.05
    sub_pixel = m.surface_px.copy()
    m.update(labels, [2])  # an edited B-scan is measured from its labels
    np.testing.assert_array_equal(m.surface_px[2], np.floor(surface[2] + 0.5))
    np.testing.assert_array_equal(np.delete(m.surface_px, 2, 0), np.delete(sub_pixel, 2, 0))


def test_hard_probabilities_match_labels() -> None:
    labels = flat()
    labels[:, 48:52] = 5
    labels[:, :, :5] = 0  # some bare A-scans
    p = (np.arange(7)[:, None, None, None] == labels).astype(np.float32)
    from_labels = measure_epidermis(labels, (1.0, 1.0, 1.0))
    from_probs = measure_epidermis(labels, (1.0, 1.0, 1.0), probabilities=p)
    for name in ("surface_px", "dej_px", "sc_bottom_px"):
        np.testing.assert_array_equal(getattr(from_probs, name), getattr(from_labels, name))


def test_missing_boundaries_are_nan_and_uncovered() -> None:
    labels = flat(1)
    labels[0, :, 0] = 0  # no skin
    labels[0, :, 1] = np.where(labels[0, :, 1] == 6, 4, labels[0, :, 1])  # no dermis
    labels[0, :, 2] = np.where(labels[0, :, 2] == 3, 4, labels[0, :, 2])  # no stratum corneum
    m = measure_epidermis(labels, (1.0, 1.0, 1.0))
    assert np.isnan(m.thickness_um[0, :2]).all() and np.isfinite(m.thickness_um[0, 2:]).all()
    assert m.thickness_um[0, 2] == 30.0 and np.isnan(m.sc_thickness_um[0, 2])
    assert m.summary["n"] == 30 and m.summary["coverage"] == pytest.approx(30 / 32)
    assert m.summary["thickness_min_um"] == 30.0  # NaN never enters as 0


def test_all_background_volume_gives_nan_summary_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = measure_epidermis(np.zeros((2, 40, 16), np.uint8), (1, 1, 1), normal_correction=True)
    assert m.summary["coverage"] == 0.0 and m.summary["n"] == 0
    assert np.isnan(m.summary["thickness_mean_um"]) and np.isnan(m.summary["thickness_p95_um"])
    assert np.isnan(m.summary["dej_undulation_index"]) and np.isnan(m.thickness_um).all()


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (flat(), {"refractive_index": 0.0}, "refractive index"),
        (flat(), {"refractive_index": -1.4}, "refractive index"),
        (flat().astype(np.float32), {}, "integer"),
        (flat()[None], {}, "shape"),
        (flat() + 5, {}, "class table"),
        (flat(), {"pixel_size_um": (1.0, 1.0)}, "pixel sizes"),
        (flat(), {"pixel_size_um": (1.0, 0.0, 1.0)}, "pixel sizes"),
        (flat(), {"probabilities": np.zeros((7, 3, 80, 31), np.float32)}, "probabilities"),
    ],
)
def test_bad_input_raises_clear_error(labels: np.ndarray, kwargs: dict, match: str) -> None:
    kwargs = {"pixel_size_um": (1.0, 1.0, 1.0), **kwargs}
    with pytest.raises(SkinsegInputError, match=match) as err:
        measure_epidermis(labels, source="layer 'oct labels'", **kwargs)
    assert "layer 'oct labels'" in str(err.value)


def test_lazy_dask_labels_match_numpy() -> None:
    da = pytest.importorskip("dask.array")
    labels = flat(20)
    labels[7, :, 3] = 0
    lazy = measure_epidermis(da.from_array(labels, chunks=(3, 80, 32)), (1.0, 1.0, 1.0))
    eager = measure_epidermis(labels, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(lazy.thickness_um, eager.thickness_um)
    assert lazy.summary["coverage"] == pytest.approx(1 - 1 / (20 * 32))


def test_image_data_input_and_unknown_pixel_size() -> None:
    m = measure_epidermis(ImageData(flat(), (10.0, 2.0, 3.0), source="scan.tif"))
    assert m.source == "scan.tif" and m.thickness_um[0, 0] == 60.0
    with pytest.warns(UserWarning, match="pixel size"):
        m = measure_epidermis(flat())
    assert m.thickness_um[0, 0] == 30.0


def test_update_recomputes_only_touched_bscans() -> None:
    rng = np.random.default_rng(2)
    surface = rng.uniform(10, 20, (6, 40))
    labels = layers(surface, surface + rng.uniform(10, 30, (6, 40)), 70)
    m = measure_epidermis(labels, (4.0, 2.0, 3.0), normal_correction=True)
    before = m.dej_px.copy()
    for i in (1, 4):  # both lose their dermis in 10 A-scans; only B-scan 1 is reported first
        labels[i, :, :10] = np.where(labels[i, :, :10] == 6, 4, labels[i, :, :10])
    m.update(labels, [1])
    assert np.isnan(m.thickness_um[1, :10]).all() and np.isfinite(m.thickness_um[1, 10:]).all()
    assert m.summary["n"] == 6 * 40 - 10
    np.testing.assert_array_equal(m.dej_px[4], before[4])
    m.update(labels, [4])
    fresh = measure_epidermis(labels, (4.0, 2.0, 3.0), normal_correction=True)
    np.testing.assert_array_equal(m.thickness_um, fresh.thickness_um)
    np.testing.assert_equal(m.summary, fresh.summary)
    np.testing.assert_equal(m.per_bscan, fresh.per_bscan)
    with pytest.raises(SkinsegInputError, match="outside"):
        m.update(labels, [6])
    with pytest.raises(SkinsegInputError, match="do not match"):
        m.update(labels[:5], [0])


def test_describe_statistics() -> None:
    values = np.array([[1.0, 2.0, np.nan, 4.0], [np.nan] * 4])
    d = describe(values)
    assert (d["n"], d["coverage"], d["mean"], d["min"], d["max"]) == (3, 3 / 8, 7 / 3, 1.0, 4.0)
    assert d["sd"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert d["median"] == 2.0 and d["p95"] == pytest.approx(np.percentile([1, 2, 4], 95))
    rows = describe(values, axis=1)
    np.testing.assert_array_equal(rows["n"], [3, 0])
    assert np.isnan(rows["mean"][1]) and rows["mean"][0] == pytest.approx(7 / 3)


def test_export_csv_and_json(tmp_path: Path) -> None:
    labels = flat()
    labels[:, :, 0] = 0
    m = measure_epidermis(labels, (10.0, 2.0, 3.0), refractive_index=1.4)
    written = write_measurement(m, tmp_path / "out", per_ascan=True)
    assert set(written) == {"summary", "per_bscan", "per_ascan", "json"}
    with open(written["summary"], newline="") as f:
        (summary,) = list(csv.DictReader(f))
    assert float(summary["thickness_mean_um"]) == pytest.approx(m.summary["thickness_mean_um"])
    with open(written["per_bscan"], newline="") as f:
        assert [int(r["bscan"]) for r in csv.DictReader(f)] == [0, 1, 2]
    with open(written["per_ascan"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 32 and rows[1]["ascan"] == "1"
    assert float(rows[1]["thickness_um"]) == pytest.approx(60 / 1.4, rel=1e-6)
    data = json.loads(written["json"].read_text())
    assert data["summary"]["refractive_index"] == 1.4 and data["map_shape"] == [3, 32]
    assert data["per_bscan"][0]["n"] == 31


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with atomic_write(path) as f:
        f.write("new")
    assert path.read_text() == "new"


def band_to_labels(mask: np.ndarray) -> np.ndarray:
    """Inline band → labels (0 above, 4 from the band's top to its bottom row, 6 below)."""
    band = mask > 127
    rows = np.arange(band.shape[-2])[:, None]
    top = np.where(band.any(axis=-2), np.argmax(band, axis=-2), band.shape[-2])[..., None, :]
    bottom = band.shape[-2] - 1 - np.argmax(band[..., ::-1, :], axis=-2)[..., None, :]
    return np.where(rows < top, 0, np.where(rows <= bottom, 4, 6)).astype(np.uint8)


@pytest.mark.realdata
def test_real_masks_thickness_equals_band_height() -> None:
    if not MASKS.is_dir():
        pytest.skip(f"real data folder {MASKS} is absent")
    from skimage.io import imread

    masks = np.stack([imread(p) for p in sorted(MASKS.glob("*.png"))])
    assert masks.shape[1:] == (512, 512)
    try:
        from skinseg.io.masks import band_mask_to_labels
    except ImportError:
        band_mask_to_labels = band_to_labels
    band = masks > 127
    top = np.argmax(band, axis=1)
    bottom = band.shape[1] - 1 - np.argmax(band[:, ::-1], axis=1)
    height = np.where(band.any(axis=1), bottom - top + 1, np.nan)  # top edge to bottom edge
    labels = np.stack([np.asarray(band_mask_to_labels(mask)) for mask in masks])
    m = measure_epidermis(labels, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(m.thickness_um, height)
    contiguous = band.sum(axis=1) == height
    assert contiguous.mean() > 0.99  # resize leaves a few one-row holes inside the band
    np.testing.assert_array_equal(m.thickness_um[contiguous], band.sum(axis=1)[contiguous])
    assert 25 < m.summary["thickness_median_um"] < 40  # README: median about 32 rows
