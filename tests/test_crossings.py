"""Nerve crossings: both rules on drawn scenes and phantoms, IENFD, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import line

from skinseg.errors import SkinsegInputError
from skinseg.measure.crossings import CrossingParams, crossing_density, find_crossings
from skinseg.measure.metrics import match_points
from skinseg.synth.biopsy import biopsy_phantom

PX = 0.5  # µm per px: the seed's "20×"
SEED = CrossingParams(rule="seed")
SKELETON = CrossingParams()
DEJ = 100  # rows >= DEJ are dermis


def tissue(shape: tuple[int, int] = (200, 240), surface: int = 20, dej: int = DEJ) -> np.ndarray:
    rows = np.arange(shape[0])[:, None]
    return np.broadcast_to(np.where(rows >= dej, 2, np.where(rows >= surface, 1, 0)), shape).astype(np.uint8)


def fibres(
    *polylines: list[tuple[int, int]], shape: tuple[int, int] = (200, 240), radius: int = 1
) -> np.ndarray:
    """Nerve mask: polylines of (row, col) vertices, drawn ``2 radius + 1`` px wide."""
    mask = np.zeros(shape, bool)
    for poly in polylines:
        for (r0, c0), (r1, c1) in zip(poly[:-1], poly[1:]):
            mask[line(r0, c0, r1, c1)] = True
    return ndi.binary_dilation(mask, iterations=radius)


def counts(nerves: np.ndarray, labels: np.ndarray | None = None) -> tuple[int, int]:
    labels = tissue() if labels is None else labels
    return tuple(find_crossings(labels, nerves, PX, p).count for p in (SEED, SKELETON))


def test_one_fibre_crossing_counts_once_at_the_boundary():
    nerves = fibres([(170, 60), (100, 70), (40, 75)])
    for params in (SEED, SKELETON):
        res = find_crossings(tissue(), nerves, PX, params)
        assert res.count == 1, params.rule
        row, col = res.points[0]
        shift = 0.25 * 10 if params.rule == "seed" else 0.0  # threshold 0.6 after σ 10 px: 0.25 σ deeper
        assert abs(row - (DEJ - 0.5 + shift)) <= 1.5 and abs(col - 70) <= 1.5, (params.rule, res.points)


def test_skeleton_rule_follows_efns_rules():
    split_below = fibres([(170, 100), (106, 100), (98, 94), (40, 88)], [(106, 100), (98, 106), (40, 114)])
    assert counts(split_below)[1] == 2
    branch_above = fibres([(170, 100), (94, 100), (40, 80)], [(94, 100), (40, 125)])
    assert counts(branch_above)[1] == 1
    close_pair = fibres([(170, 80), (100, 96), (40, 80)], [(170, 125), (100, 108), (40, 125)])
    assert counts(close_pair)[1] == 2
    stops_short = fibres([(170, 100), (106, 100)])
    along = fibres([(170, 60), (103, 80), (103, 180)])  # 3 px under the DEJ, never above it
    fragment = fibres([(170, 100), (106, 100)], [(93, 101), (60, 104)])
    for nerves in (stops_short, fragment):
        assert counts(nerves) == (0, 0)
    assert counts(along) == (1, 0)  # the seed rule's smoothed boundary moves onto the fibre


def test_skeleton_rule_rejects_a_fibre_grazing_the_boundary():
    grazing = fibres([(170, 60), (101, 80), (99, 100), (101, 160), (170, 180)], radius=0)
    assert counts(grazing)[1] == 0


def test_seed_rule_merges_a_split_that_the_skeleton_rule_separates():
    split = fibres([(170, 100), (105, 100), (99, 96), (40, 90)], [(105, 100), (99, 104), (40, 110)])
    seed, skeleton = counts(split)
    assert (seed, skeleton) == (1, 2)


def test_parameters_are_in_micrometres():
    """The same scene at half the resolution gives the same count and the same point in µm."""
    fine = fibres([(170, 60), (100, 70), (40, 75)])
    coarse_nerves = fine[::2, ::2] | fine[1::2, 1::2]
    for params in (SEED, SKELETON):
        a = find_crossings(tissue(), fine, PX, params)
        b = find_crossings(tissue()[::2, ::2], coarse_nerves, 2 * PX, params)
        assert a.count == b.count == 1, params.rule
        np.testing.assert_allclose(a.points[0] * PX, b.points[0] * 2 * PX, atol=1.5)
        assert b.surface_length_mm == pytest.approx(a.surface_length_mm, rel=0.02)


def test_lengths_and_ienfd():
    nerves = fibres([(170, 60), (100, 70), (40, 75)], [(170, 160), (100, 170), (40, 175)])
    res = find_crossings(tissue(), nerves, PX)
    assert res.count == 2
    assert res.surface_length_mm == pytest.approx(240 * PX / 1000, rel=0.02)
    assert res.dej_length_mm == pytest.approx(240 * PX / 1000, rel=0.02)
    assert res.ienfd_per_mm == pytest.approx(2 / res.surface_length_mm)
    assert res.ienfd_per_mm_dej == pytest.approx(2 / res.dej_length_mm)
    assert crossing_density(3, 0.5) == 6.0
    assert math.isnan(crossing_density(3, 0.0)) and math.isnan(crossing_density(1, float("nan")))


def test_no_nerves_gives_zero_with_the_length_stated():
    for params in (SEED, SKELETON):
        res = find_crossings(tissue(), np.zeros((200, 240), bool), PX, params)
        assert res.count == 0 and res.points.shape == (0, 2)
        assert res.ienfd_per_mm == 0.0 and res.surface_length_mm > 0.1
        assert any("no nerve" in w for w in res.warnings)


def test_no_epidermis_gives_zero_and_says_so():
    labels = np.where(tissue() == 1, 0, tissue()).astype(np.uint8)
    nerves = fibres([(170, 60), (100, 70), (40, 75)])
    for params in (SEED, SKELETON):
        res = find_crossings(labels, nerves, PX, params)
        assert res.count == 0 and res.surface_length_mm == 0.0 and math.isnan(res.ienfd_per_mm)
        assert any("no epidermis" in w for w in res.warnings)


def test_probability_map_input():
    nerves = fibres([(170, 60), (100, 70), (40, 75)])
    prob = (tissue() == 2).astype(np.float32)
    for params in (SEED, SKELETON):
        res = find_crossings(prob, nerves, PX, params)
        assert res.count == 1 and math.isnan(res.surface_length_mm) and res.dej_length_mm > 0.1


def test_small_enclosed_regions_are_flipped():
    labels = tissue()
    labels[150:160, 150:160] = 1  # a hole in the dermis
    labels[50:55, 200:205] = 2  # a dermis island in the epidermis
    res = find_crossings(labels, fibres([(170, 60), (100, 70), (40, 75)]), PX, SKELETON)
    np.testing.assert_array_equal(res.dermis, tissue() == 2)


@pytest.mark.parametrize("pixel_size", [0.0, -1.0, None, float("nan")])
def test_bad_pixel_size_is_a_clear_error(pixel_size):
    with pytest.raises(SkinsegInputError, match="pixel size"):
        find_crossings(tissue(), np.zeros((200, 240), bool), pixel_size)


def test_bad_shapes_and_rule_are_clear_errors():
    with pytest.raises(SkinsegInputError, match="differ in shape"):
        find_crossings(tissue(), np.zeros((200, 241), bool), PX)
    with pytest.raises(SkinsegInputError, match="2-D"):
        find_crossings(np.zeros((200, 240, 3), np.uint8), np.zeros((200, 240, 3), bool), PX)
    with pytest.raises(SkinsegInputError, match="rule"):
        CrossingParams(rule="manual")
    with pytest.raises(SkinsegInputError, match="band_width_um"):
        CrossingParams(band_width_um=0.0)


def test_skeleton_rule_is_exact_on_phantom_truth():
    for seed in (11, 12):
        ph = biopsy_phantom((480, 1600), seed=seed)
        res = find_crossings(ph.tissue, ph.nerves, ph.pixel_size_um)
        assert res.count == ph.count, seed
        match = match_points(res.points * PX, ph.crossings * PX, 10.0)
        assert match.precision == match.recall == 1.0, seed
        assert res.dej_length_mm * 1000 == pytest.approx(ph.dej_length_um, rel=0.02)
        assert res.surface_length_mm * 1000 == pytest.approx(ph.surface_length_um, rel=0.02)
