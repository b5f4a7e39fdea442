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
