"""Anatomical post-processing: optimal monotone labelling, islands, DEJ band, gaps."""

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from skinseg.classes import OCT_CLASSES
from skinseg.measure.boundaries import dej_depth
from skinseg.measure.metrics import count_components
from skinseg.segment.postprocess import (
    PostprocessParams,
    class_argmax,
    monotone_path,
    postprocess_labels,
    postprocess_probabilities,
)
from skinseg.synth.oct import oct_phantom

GLASS, GEL, SC, EPI, DEJ, DERMIS = 1, 2, 3, 4, 5, 6


@pytest.fixture(scope="module")
def phantom():
    return oct_phantom((3, 160, 96), seed=7, glass=True, gel=True)


def noisy_probabilities(labels: np.ndarray, seed: int = 0, noise: float = 1.0) -> np.ndarray:
    """Softmax of (3 for the true class + smoothed Gaussian noise): a plausible network output."""
    rng = np.random.default_rng(seed)
    values = np.arange(7)[:, None, None, None]
    logits = np.where(labels[None] == values, 3.0, 0.0) + rng.normal(0, noise, (7, *labels.shape))
    logits = ndi.gaussian_filter(logits, (0, 0, 1, 1)).astype(np.float32)
    p = np.exp(logits)
    return p / p.sum(axis=0)


def is_monotone(labels: np.ndarray) -> bool:
    return bool(np.all(np.diff(labels.astype(int), axis=-2) >= 0))


def runs_per_column(mask: np.ndarray) -> np.ndarray:
    """Number of separate runs of True down each A-scan of ``(..., depth, width)``.

    (A thin DEJ band that is steep between A-scans is not 8-connected even in the phantom
    truth, so one run per A-scan is the test of "one continuous band".)
    """
    return mask[..., 0, :] + (mask[..., 1:, :] & ~mask[..., :-1, :]).sum(axis=-2)


def test_class_argmax_matches_numpy_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, (5, 2, 7, 9)).astype(np.float32)  # many ties: first class wins
    out = class_argmax(scores)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, scores.argmax(axis=0))


def test_monotone_path_is_optimal_against_brute_force():
    rng = np.random.default_rng(1)
    depth, n_classes = 6, 3
    scores = np.log(rng.random((n_classes, 1, depth, 40))).astype(np.float32)
    path = monotone_path(scores)[0]
    every = itertools.product(range(n_classes), repeat=depth)
    sequences = [s for s in every if list(s) == sorted(s)]
    for col in range(scores.shape[-1]):
        best = max(sum(scores[c, 0, r, col] for r, c in enumerate(s)) for s in sequences)
        got = sum(scores[c, 0, r, col] for r, c in enumerate(path[:, col]))
        assert got == pytest.approx(best, abs=1e-5)
        assert np.all(np.diff(path[:, col]) >= 0)


def test_clean_labels_unchanged(phantom):
    axial = phantom.pixel_size_um[1]
    assert np.array_equal(postprocess_labels(phantom.labels, axial_um=axial), phantom.labels)
    assert np.array_equal(postprocess_labels(phantom.labels[1], axial_um=axial), phantom.labels[1])


def test_noisy_probabilities_give_monotone_truth(phantom):
    p = noisy_probabilities(phantom.labels)
    raw = p.argmax(axis=0)
    assert not is_monotone(raw)  # the noise does break the order somewhere
    out = postprocess_probabilities(p, axial_um=phantom.pixel_size_um[1])
    assert out.shape == phantom.labels.shape and out.dtype == np.uint8
    assert is_monotone(out)
    assert (out == phantom.labels).mean() > (raw == phantom.labels).mean()
    assert (out == phantom.labels).mean() > 0.994
    assert np.all(runs_per_column(out == DEJ) == 1)
    for b in range(len(out)):
        assert count_components(out[b] == EPI) == 1


def test_planted_islands_removed(phantom):
    plain = oct_phantom((160, 96), seed=8)  # air above the skin, no glass or gel
    bad = plain.labels.copy()
    for col in range(10, 18):  # gel over the skin in 8 A-scans: in order, but an island
        top = np.argmax(bad[:, col] > 0)
        bad[top - 5 : top, col] = GEL
    out = postprocess_labels(bad, axial_um=plain.pixel_size_um[1])
    island = bad == GEL
    assert not (out == GEL).any()
    assert np.array_equal(out[~island], plain.labels[~island])
    assert np.mean(out[island] == 0) > 0.7  # mostly air, as around it (the skin beside is higher)
    assert is_monotone(out)
    keep_all = PostprocessParams(min_island_px=0)
    kept = postprocess_labels(bad, axial_um=plain.pixel_size_um[1], params=keep_all)
    assert np.array_equal(kept, bad)

    truth = phantom.labels[0]
    bad = truth.copy()
    epi_rows = np.nonzero((truth[:, 50] == EPI))[0]
    bad[epi_rows[2] : epi_rows[2] + 3, 48:56] = DERMIS  # dermis island in the epidermis
    bad[epi_rows[5] : epi_rows[5] + 2, 70:76] = DEJ  # DEJ fragment above the real DEJ
    assert not np.array_equal(bad, truth)
    out = postprocess_labels(bad, axial_um=phantom.pixel_size_um[1])
    assert np.array_equal(out, truth)


def test_duplicated_and_thick_dej_bands_become_one_thin_band(phantom):
    truth = phantom.labels[1]
    bad = truth.copy()
    centre = np.round(dej_depth(truth)).astype(int)
    cols = np.arange(truth.shape[1])
    for r in (-12, -11):  # a second DEJ band 11-12 rows above the real one, over 2/3 of the width
        keep = cols < 64
        bad[centre[keep] + r, cols[keep]] = DEJ
    for r in (-3, -2, 1, 2):  # and the real band twice as thick (and more) everywhere
        bad[centre + r, cols] = np.where(bad[centre + r, cols] != 0, DEJ, 0)
    assert np.mean((bad == DEJ).sum(axis=0)) > 2 * np.mean((truth == DEJ).sum(axis=0))
    out = postprocess_labels(bad, axial_um=phantom.pixel_size_um[1])
    assert np.all(runs_per_column(out == DEJ) == 1)
    assert np.all(np.abs((out == DEJ).sum(axis=0) - (truth == DEJ).sum(axis=0)) <= 1)
    assert np.abs(dej_depth(out) - dej_depth(truth)).max() <= 0.5
    assert is_monotone(out)


def test_gap_in_dark_region_filled(phantom):
    truth = phantom.labels[2]
    bad = truth.copy()
    gap = slice(40, 58)
    # no DEJ, no dermis: epidermis down to the bottom
    bad[:, gap] = np.where(bad[:, gap] >= EPI, EPI, bad[:, gap])
    out = postprocess_labels(bad, axial_um=phantom.pixel_size_um[1])
    assert np.all(runs_per_column(out == DEJ) == 1)
    edges = dej_depth(truth)[[gap.start - 1, gap.stop]]
    across = np.interp(np.arange(gap.start, gap.stop), [gap.start - 1, gap.stop], edges)
    assert np.abs(dej_depth(out)[gap] - across).max() <= 1.0  # interpolated from the neighbours
    outside = np.ones(truth.shape[1], bool)
    outside[gap] = False
    assert np.array_equal(out[:, outside], truth[:, outside])


def test_dej_band_thickness_bounded_in_um(phantom):
    truth = phantom.labels[0]
    assert np.array_equal(postprocess_labels(truth, axial_um=0.5), truth)  # under the cap: kept
    thin = postprocess_labels(truth, axial_um=10.0, params=PostprocessParams(max_dej_um=5.0))
    assert np.all((thin == DEJ).sum(axis=0) == 1)  # 0.5 px at most, but at least one pixel
    assert np.abs(dej_depth(thin) - dej_depth(truth)).max() <= 0.5


def test_subset_of_classes(phantom):
    truth = phantom.labels[0]
    three = np.select([truth >= DEJ, truth >= SC], [DERMIS, EPI], 0)  # air, epidermis, dermis
    values = [0, EPI, DERMIS]
    p = noisy_probabilities(three[None], seed=3)[values]
    p /= p.sum(axis=0)
    out = postprocess_probabilities(p, axial_um=2.4, values=values)[0]
    assert set(np.unique(out)) <= set(values)
    assert is_monotone(out)
    assert (out == three).mean() > 0.99


def test_channel_order_follows_values(phantom):
    truth = phantom.labels[:1]
    p = noisy_probabilities(truth, seed=4)
    order = np.array([6, 0, 5, 1, 4, 2, 3])
    shuffled = postprocess_probabilities(p[order], axial_um=2.4, values=order)
    assert np.array_equal(shuffled, postprocess_probabilities(p, axial_um=2.4))


def test_log_probabilities_and_input_left_alone(phantom):
    p = noisy_probabilities(phantom.labels[:2], seed=5, noise=2.0)
    log_p = np.log(p)
    before = log_p.copy()
    a = postprocess_probabilities(log_p, axial_um=2.4, log=True)
    np.testing.assert_array_equal(log_p, before)  # island removal restores what it changed
    assert np.array_equal(a, postprocess_probabilities(p, axial_um=2.4))


def test_invalid_params():
    with pytest.raises(ValueError, match="max_dej_um"):
        PostprocessParams(max_dej_um=0)
    assert OCT_CLASSES.values == list(range(7))  # the order the post-processing relies on


def test_rows_decided_by_argmax_alone():
    """All-air and all-last-class A-scans, and a single out-of-order pixel between."""
    scores = np.full((3, 1, 6, 3), -5.0, np.float32)
    scores[0, 0, :, 0] = 0  # column 0: air everywhere
    scores[2, 0, :, 1] = 0  # column 1: last class everywhere
    scores[0, 0, :3, 2], scores[2, 0, 3:, 2] = 0, 0  # column 2: air over last class ...
    scores[1, 0, 4, 2] = 1  # ... with a middle-class pixel out of order below
    no_islands = PostprocessParams(min_island_px=0)
    out = postprocess_probabilities(
        np.exp(scores), axial_um=1.0, values=[0, 1, 2], params=no_islands
    )[0]
    assert out[:, 0].tolist() == [0] * 6 and out[:, 1].tolist() == [2] * 6
    assert out[:, 2].tolist() == [0, 0, 0, 2, 2, 2]
    assert np.array_equal(monotone_path(scores)[0], out)


@pytest.mark.parametrize("noise", [0.1, 3.0])  # 6 % of A-scans out of order (gathered), or all
def test_shortcuts_give_the_full_dynamic_programme(noise):
    rng = np.random.default_rng(6)
    rows = np.arange(40)[:, None]
    ideal = np.stack([-np.abs(rows - centre) / 8.0 for centre in (0, 20, 39)])  # 3 ordered bands
    scores = (ideal + rng.normal(0, noise, (3, 40, 64)))[:, None].astype(np.float32)
    no_islands = PostprocessParams(min_island_px=0)
    out = postprocess_probabilities(
        scores, axial_um=1.0, values=[0, 1, 2], params=no_islands, log=True
    )
    assert np.array_equal(out, monotone_path(scores))
