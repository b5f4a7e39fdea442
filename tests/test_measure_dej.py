"""DEJ shape: undulation (interdigitation) index and roughness, from maps and from labels."""

from __future__ import annotations

import numpy as np
import pytest

from skinseg.measure.dej_shape import dej_roughness, smooth_map, smooth_profiles, undulation_index
from skinseg.measure.thickness import measure_epidermis


def arc_ratio(z_of_x, x_end: float, dx_fine: float = 1e-3) -> float:
    """Exact-enough contour length ÷ chord of a curve z(x) on [0, x_end] (same units)."""
    x = np.arange(0.0, x_end + dx_fine / 2, dx_fine)
    z = z_of_x(x)
    return float(np.hypot(np.diff(x), np.diff(z)).sum() / np.hypot(x[-1] - x[0], z[-1] - z[0]))


def test_flat_and_tilted_dej_have_index_one_and_no_roughness() -> None:
    x = np.arange(200.0)
    dej = np.stack([np.full(200, 80.0), 40.0 + 0.7 * x])  # µm; second B-scan tilted
    per_bscan, overall = undulation_index(dej, lateral_um=2.0)
    np.testing.assert_allclose(per_bscan, 1.0, atol=1e-9)
    assert overall == pytest.approx(1.0)
    per_bscan, overall = dej_roughness(dej, lateral_um=2.0)
    assert per_bscan[0] == pytest.approx(0.0, abs=1e-9)
    assert per_bscan[1] < 1e-9  # a straight line is its own smoothed line, ends included


def test_sinusoidal_dej_index_matches_arc_length_in_physical_units() -> None:
    lateral, amp, period = 3.0, 12.0, 150.0  # µm
    x_px = np.arange(400)

    def z(x_um):
        return 100.0 + amp * np.sin(2 * np.pi * x_um / period)

    dej = z(x_px * lateral)[None]
    truth = arc_ratio(z, x_px[-1] * lateral)
    assert truth > 1.05
    per_bscan, overall = undulation_index(dej, lateral)
    assert per_bscan[0] == pytest.approx(truth, rel=0.01)
    # same contour, lateral pixels half as wide: pixel counts alone would mislead
    dej2 = z(np.arange(800) * lateral / 2)[None]
    assert undulation_index(dej2, lateral / 2)[1] == pytest.approx(truth, rel=0.01)


def test_index_from_labels_uses_axial_and_lateral_sizes() -> None:
    n, depth, width = 2, 120, 300
    axial, lateral = 1.5, 3.0
    x_um = np.arange(width) * lateral
    dej_true_px = 60 + (10.0 / axial) * np.sin(2 * np.pi * x_um / 180.0)  # 10 µm amplitude
    r = np.arange(depth)[:, None] + 0.5
    labels = np.where(r >= 20, 4, 0)
    labels = np.where(r >= dej_true_px[None, :], 6, labels).astype(np.uint8)
    volume = np.repeat(labels[None], n, axis=0)
    truth = arc_ratio(lambda x: 10.0 * np.sin(2 * np.pi * x / 180.0), x_um[-1])
    raw = measure_epidermis(volume, (5.0, axial, lateral))
    assert raw.summary["dej_undulation_index"] == pytest.approx(truth, rel=0.03)
    # a smooth DEJ sampled finely: one pixel of smoothing takes the staircase out
    m = measure_epidermis(volume, (5.0, axial, lateral), contour_sigma_px=1.0)
    assert m.summary["dej_undulation_index"] == pytest.approx(truth, rel=0.005)
    per_bscan = [row["dej_undulation_index"] for row in m.per_bscan]
    assert per_bscan == pytest.approx([truth] * n, rel=0.005)
    assert raw.summary["dej_undulation_index"] > m.summary["dej_undulation_index"]


def test_phantom_dej_shape_matches_truth() -> None:
    oct_phantom = pytest.importorskip("skinseg.synth.oct").oct_phantom
    ph = oct_phantom((8, 256, 256), (10.0, 2.0, 3.0), seed=0)  # rete ridges about 22 µm deep
    m = measure_epidermis(ph.labels, ph.pixel_size_um)
    true_dej_um = ph.dej_depth * 2.0
    und_true = undulation_index(true_dej_um, 3.0)[1]
    assert und_true > 1.05
    assert m.summary["dej_undulation_index"] == pytest.approx(und_true, abs=0.02)
    rough_true = dej_roughness(true_dej_um, 3.0)[1]
    assert m.summary["dej_roughness_um"] == pytest.approx(rough_true, rel=0.05)


def test_roughness_measures_fine_ripple_not_broad_shape() -> None:
    lateral = 2.0
    x_um = np.arange(1000) * lateral
    broad = 30.0 * np.sin(2 * np.pi * x_um / 4000.0)  # far coarser than σ = 50 µm
    ripple = 4.0 * np.sin(2 * np.pi * x_um / 20.0)  # far finer
    per_bscan, overall = dej_roughness(np.stack([100 + broad, 100 + broad + ripple]), lateral)
    assert per_bscan[0] < 0.3
    assert per_bscan[1] == pytest.approx(4.0 / np.sqrt(2), rel=0.1)
    assert overall == pytest.approx(np.sqrt((per_bscan**2).mean()), rel=1e-6)


def test_gaps_break_the_contour_and_empty_bscans_are_nan() -> None:
    x = np.arange(100.0)
    zigzag = np.where(x % 2 == 0, 0.0, 1.0)
    dej = np.stack([zigzag.copy(), np.full(100, np.nan), np.full(100, 5.0)])
    dej[0, 50] = np.nan  # the gap bridges neither a step nor a chord
    per_bscan, overall = undulation_index(dej, lateral_um=1.0, contour_sigma_px=0)
    steps, chords = 97 * np.sqrt(2), np.hypot(49, 1) + 48  # two pieces: cols 0..49 and 51..99
    assert per_bscan[0] == pytest.approx(steps / chords)
    assert np.isnan(per_bscan[1]) and per_bscan[2] == 1.0
    assert overall == pytest.approx((steps + 99) / (chords + 99))
    rough, rough_all = dej_roughness(dej, 1.0)
    assert np.isnan(rough[1]) and np.isfinite(rough_all)
    assert np.isnan(undulation_index(np.full((2, 5), np.nan), 1.0)[1])
    assert np.isnan(dej_roughness(np.full((2, 5), np.nan), 1.0)[1])


def test_smoothing_ignores_nan_and_keeps_straight_lines() -> None:
    values = np.array([[1.0, np.nan, 1.0, 1.0], [np.nan] * 4])
    out = smooth_map(values, (0.0, 1.0))
    np.testing.assert_allclose(out[0], 1.0)
    assert np.isnan(out[1]).all()
    line = 3.0 + 0.5 * np.arange(40.0)
    line[[5, 20, 21]] = np.nan
    fitted = smooth_profiles(line, 4.0)
    np.testing.assert_allclose(fitted, 3.0 + 0.5 * np.arange(40.0), atol=1e-8)  # gaps filled too
    assert np.isnan(smooth_profiles(np.full(6, np.nan), 2.0)).all()


def test_roughness_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        dej_roughness(np.zeros((1, 5)), 1.0, sigma_um=0.0)
