"""Metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from skinseg.measure.metrics import (
    boundary_mae,
    count_components,
    dice,
    dice_per_class,
    pearson_r,
    runs_per_column,
    thickness_correlation,
)


def test_dice_hand_computed():
    pred = np.array([1, 1, 0, 0], bool)
    truth = np.array([1, 0, 1, 0], bool)
    assert dice(pred, truth) == pytest.approx(0.5)  # 2 * 1 / (2 + 2)
    assert dice(pred, pred) == 1.0
    assert dice(pred, ~pred) == 0.0


def test_dice_both_empty_is_nan_and_shapes_must_match():
    assert math.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros(3, bool), np.zeros(4, bool))


def test_dice_per_class_defaults_to_nonzero_classes_present():
    pred = np.array([[0, 4, 4, 6], [0, 4, 6, 6]])
    truth = np.array([[0, 4, 6, 6], [0, 4, 6, 6]])
    scores = dice_per_class(pred, truth)
    assert set(scores) == {4, 6}
    assert scores[4] == pytest.approx(2 * 2 / (3 + 2))
    assert scores[6] == pytest.approx(2 * 3 / (3 + 4))
    assert math.isnan(dice_per_class(pred, truth, classes=[5])[5])


def test_boundary_mae_skips_missing_pairs():
    pred, truth = np.array([1.0, 2.0, np.nan]), np.array([2.0, 2.0, 5.0])
    assert boundary_mae(pred, truth) == pytest.approx(0.5)
    assert math.isnan(boundary_mae(np.array([np.nan]), np.array([1.0])))


def test_pearson_r_hand_computed():
    assert pearson_r(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    assert pearson_r(np.arange(5.0), -2 * np.arange(5.0)) == pytest.approx(-1.0)
    assert math.isnan(pearson_r(np.ones(4), np.arange(4.0)))
    assert math.isnan(pearson_r(np.array([1.0, np.nan]), np.array([1.0, 2.0])))


def test_thickness_correlation_uses_bottom_minus_top():
    true_top = np.array([10.0, 12.0, 11.0, 10.0])
    true_bottom = true_top + np.array([30.0, 40.0, 35.0, 31.0])
    # prediction with a different surface but the same thickness pattern, halved
    pred_top = np.array([5.0, 5.0, 5.0, 5.0])
    pred_bottom = pred_top + 0.5 * (true_bottom - true_top)
    assert thickness_correlation(pred_top, pred_bottom, true_top, true_bottom) == pytest.approx(1.0)
    flat = thickness_correlation(pred_top, pred_top + 30, true_top, true_bottom)
    assert math.isnan(flat)


def test_count_components_is_8_connected():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[4, 4] = True
    assert count_components(mask) == 2
    assert count_components(np.zeros((3, 3), bool)) == 0


def test_runs_per_column_counts_separate_vertical_runs():
    mask = np.array(
        [
            [1, 0, 0, 1],
            [1, 1, 0, 0],
            [0, 1, 0, 1],
            [1, 0, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(runs_per_column(mask), [2, 1, 0, 2])
    # diagonal pieces: one 8-connected component, yet two runs in column 1
    stair = np.array([[0, 1], [1, 0], [0, 1]], dtype=bool)
    assert count_components(stair) == 1
    np.testing.assert_array_equal(runs_per_column(stair), [1, 2])
    stacked = runs_per_column(np.stack([mask, ~mask]))
    assert stacked.shape == (2, 4)
    np.testing.assert_array_equal(stacked[1], [1, 2, 1, 1])
    with pytest.raises(ValueError):
        runs_per_column(np.ones(3, dtype=bool))


def test_modified_dice_counts_near_misses_within_k():
    from skinseg.measure.metrics import modified_dice

    truth = np.zeros((9, 9), bool)
    truth[4, 1:8] = True  # a 7-px line
    shifted = np.roll(truth, 1, axis=0)  # the same line one row off
    assert modified_dice(shifted, truth, 0) == pytest.approx(dice(shifted, truth)) == 0.0
    assert modified_dice(shifted, truth, 1) == pytest.approx(7 / ((7 + 14) / 2))  # |T ∪ TP_1| = 14
    far = np.roll(truth, 3, axis=0)
    assert modified_dice(far, truth, 1) == 0.0 and modified_dice(far, truth, 3) > 0.6
    thick = truth | shifted  # 14 predicted px, all within 1 px: TP_1 = 14, |T ∪ TP_1| = 14
    assert modified_dice(thick, truth, 1) == pytest.approx(1.0)
    assert modified_dice(thick, truth, 0) == pytest.approx(dice(thick, truth))
    assert math.isnan(modified_dice(np.zeros((3, 3), bool), np.zeros((3, 3), bool), 1))


def test_count_metrics_and_point_matching():
    from skinseg.measure.metrics import count_metrics, match_points, score_crossings

    agree = count_metrics([3, 5, 9], [2, 5, 10])
    assert agree.mae == pytest.approx(2 / 3) and agree.bias == 0.0 and agree.n == 3
    assert agree.r == pytest.approx(pearson_r(np.array([3, 5, 9]), np.array([2, 5, 10])))
    truth = np.array([[0.0, 0.0], [0.0, 10.0], [50.0, 50.0]])
    pred = np.array([[0.0, 6.0], [1.0, 1.0], [90.0, 90.0]])  # greedy would pair (0, 6) with (0, 0)
    m = match_points(pred, truth, 5.0)
    assert m.matched == 2 and m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert sorted(zip(m.pred_index.tolist(), m.true_index.tolist())) == [(0, 1), (1, 0)]
    empty = match_points(np.empty((0, 2)), truth, 5.0)
    assert empty.matched == 0 and math.isnan(empty.precision) and empty.recall == 0.0
    score = score_crossings([pred, np.empty((0, 2))], [truth, np.array([[1.0, 1.0]])], 5.0)
    assert score.precision == pytest.approx(2 / 3) and score.recall == pytest.approx(2 / 4)
    assert score.counts.mae == pytest.approx(0.5) and score.counts.n == 2  # counts 3 v 3, 0 v 1
