"""The skin-biopsy phantom: shapes, determinism, anatomy, exact crossing truth, colours."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.color import rgb2hed

from skinseg.errors import SkinsegInputError
from skinseg.synth.biopsy import KINDS, BiopsyPhantom, biopsy_phantom

COUNTS = {"crossing": 1, "split_below": 2, "branch_above": 1}  # EFNS: every other kind counts 0
SEEDS = range(6)
STRIP = (480, 1600)  # full width, less height: every feature, a third of the pixels
EIGHT = np.ones((3, 3), bool)


@pytest.fixture(scope="module")
def dab() -> BiopsyPhantom:
    return biopsy_phantom(seed=2)


@pytest.fixture(scope="module")
def fluo() -> BiopsyPhantom:
    return biopsy_phantom(seed=2, stain="fluorescent")


@pytest.fixture(scope="module")
def strips() -> list[BiopsyPhantom]:
    return [biopsy_phantom(STRIP, seed=s) for s in SEEDS]


def test_shapes_and_dtypes(dab):
    h, w = 1200, 1600
    assert dab.image.shape == (h, w, 3) and dab.image.dtype == np.uint8
    assert dab.tissue.shape == (h, w) and dab.tissue.dtype == np.uint8
    assert set(np.unique(dab.tissue)) == {0, 1, 2}
    assert dab.nerves.dtype == np.uint8 and set(np.unique(dab.nerves)) == {0, 1}
    assert dab.fibre_labels.dtype == np.uint16
    np.testing.assert_array_equal(dab.nerves, dab.fibre_labels > 0)
    assert dab.fibre_labels.max() <= len(dab.fibres)
    assert dab.crossings.dtype == np.float64 and dab.crossings.shape == (dab.count, 2)
    assert dab.dej.shape == dab.surface.shape == (w,)
    assert dab.pixel_size_um == 0.5
    assert dab.dej_length_um > w * dab.pixel_size_um


def test_same_seed_same_phantom_and_stains_share_geometry(dab, fluo):
    again = biopsy_phantom(seed=2)
    for name in ("image", "tissue", "nerves", "fibre_labels", "crossings", "dej", "surface"):
        np.testing.assert_array_equal(getattr(again, name), getattr(dab, name), err_msg=name)
    for name in ("tissue", "nerves", "crossings", "dej"):
        np.testing.assert_array_equal(getattr(fluo, name), getattr(dab, name), err_msg=name)
    other = biopsy_phantom(seed=3)
    assert not np.array_equal(other.tissue, dab.tissue)


def test_epidermis_above_dermis_in_every_column(dab):
    t = dab.tissue.astype(int)
    assert (np.diff(t, axis=0) >= 0).all(), "labels must go slide → epidermis → dermis downwards"
    assert ((t == 1).any(axis=0) & (t == 2).any(axis=0) & (t[0] == 0)).all()


def test_tissue_labels_follow_the_boundaries(dab):
    rows = np.arange(dab.tissue.shape[0])[:, None]
    np.testing.assert_array_equal(dab.tissue == 2, rows >= dab.dej[None])
    np.testing.assert_array_equal(dab.tissue == 0, rows < dab.surface[None])


def test_crossings_lie_on_boundary_and_nerve(strips):
    for ph in strips:
        dej_rows = np.interp(ph.crossings[:, 1], np.arange(ph.dej.size), ph.dej)
        np.testing.assert_allclose(ph.crossings[:, 0], dej_rows, atol=1e-9)
        r, c = np.rint(ph.crossings).astype(int).T
        assert ph.nerves[r, c].all(), f"seed {ph.seed}: a crossing off the nerve mask"
        both = ndi.maximum_filter(ph.tissue == 1, 3) & ndi.maximum_filter(ph.tissue == 2, 3)
        assert both[r, c].all(), f"seed {ph.seed}: a crossing more than 1 px off the labels' boundary"


def test_count_follows_efns_rules(strips):
    for ph in strips:
        assert ph.count == len(ph.crossings) == sum(f.n_crossings for f in ph.fibres)
        for f in ph.fibres:
            assert f.kind in KINDS
            assert f.n_crossings == COUNTS.get(f.kind, 0), f.kind
            assert f.crosses == (f.kind in COUNTS)
            for p in f.crossings:  # each crossing is a vertex of the fibre's own centreline
                assert min(np.abs(path - p).sum(axis=1).min() for path in f.paths) < 1e-9


def test_non_crossing_fibres_stay_on_their_side(strips):
    for ph in strips:
        for i, f in enumerate(ph.fibres, start=1):
            mine = ph.fibre_labels == i
            side = ph.tissue[mine]
            if f.kind == "stops_short":
                touched = ph.tissue[ndi.binary_dilation(mine, EIGHT)]
                assert (touched == 2).all(), f"seed {ph.seed}: stops_short fibre {i} touches the DEJ"
            if f.kind in ("stops_short", "along_boundary", "dermal_only"):
                assert (side == 2).all(), f"seed {ph.seed}: {f.kind} fibre {i} enters the epidermis"
            if f.kind == "epidermal_fragment":
                assert (side == 1).all(), f"seed {ph.seed}: epidermal fragment {i} enters the dermis"
            if not f.crosses:
                bridge = ndi.binary_dilation(mine & (ph.tissue == 1), EIGHT) & mine & (ph.tissue == 2)
                assert not bridge.any(), f"seed {ph.seed}: {f.kind} fibre {i} is joined across the DEJ"


def test_hard_cases_present_and_close(strips):
    fibres = [f for ph in strips for f in ph.fibres]
    assert {f.kind for f in fibres} == set(KINDS)
    splits = [f for f in fibres if f.kind == "split_below"]
    gaps_um = [np.hypot(*np.diff(f.crossings, axis=0)[0]) * 0.5 for f in splits]
    assert 2.5 <= min(gaps_um) and max(gaps_um) <= 7.5 * np.hypot(1, 1.2)
    for ph in strips:  # unrelated close pairs: hard crossing fibres 2.5–7.5 µm apart along the DEJ
        cols = sorted(f.crossings[0, 1] for f in ph.fibres if f.kind == "crossing" and f.hard)
        assert len(cols) % 2 == 0
        assert all(5.0 <= b - a <= 15.0 for a, b in zip(cols[::2], cols[1::2]))


def test_easy_phantom_and_fibre_number():
    easy = biopsy_phantom(STRIP, seed=4, hard_cases=False, n_fibres=9)
    assert {f.kind for f in easy.fibres} <= {"crossing", "dermal_only"}
    assert easy.count == 9 and not any(f.hard for f in easy.fibres)
    empty = biopsy_phantom(STRIP, seed=4, hard_cases=False, n_fibres=0)
    assert empty.count == 0 and empty.crossings.shape == (0, 2)


def test_count_varies_with_seed(strips):
    counts = [ph.count for ph in strips]
    assert max(counts) - min(counts) >= 5, counts


def test_dab_fibres_are_brown(dab):
    dab_channel = rgb2hed(dab.image)[..., 2]
    fibre = dab.nerves.astype(bool) & (dab.tissue > 0)
    around = ndi.binary_dilation(fibre, iterations=6) & ~ndi.binary_dilation(fibre, iterations=2)
    around &= dab.tissue > 0
    assert dab_channel[fibre].mean() > dab_channel[around].mean() + 0.02
    red, blue = dab.image[..., 0].astype(float), dab.image[..., 2].astype(float)
    assert (red - blue)[around].mean() < (red - blue)[fibre].mean()  # brown: red over blue
    assert dab.image[dab.tissue == 0].mean() > 230  # blank slide is bright


def test_fluorescent_dark_background_bright_fibres(fluo):
    green = fluo.image[..., 1].astype(float)
    fibre = fluo.nerves.astype(bool)
    tissue = (fluo.tissue > 0) & ~ndi.binary_dilation(fibre, iterations=3)
    assert fluo.image[fluo.tissue == 0].mean() < 20
    assert green[fibre].mean() > 3 * green[tissue].mean()
    assert green[fibre].mean() > 100


def test_anatomy_is_drawn_in_micrometres():
    fine = biopsy_phantom((600, 800), 0.5, seed=7, hard_cases=False, n_fibres=0)
    coarse = biopsy_phantom((300, 400), 1.0, seed=7, hard_cases=False, n_fibres=0)
    thick_fine = (fine.dej - fine.surface).mean() * 0.5
    thick_coarse = (coarse.dej - coarse.surface).mean() * 1.0
    assert abs(thick_fine - thick_coarse) < 2.0
    assert abs(fine.dej_length_um - coarse.dej_length_um) < 0.05 * fine.dej_length_um


def test_to_image_data(dab):
    data = dab.to_image_data()
    assert data.rgb and data.pixel_size_um == (0.5, 0.5) and data.data is dab.image


@pytest.mark.parametrize(
    "kwargs",
    [{"stain": "ihc"}, {"pixel_size_um": 0.0}, {"shape": (64, 64)}, {"n_fibres": -1}, {"noise": -1.0}],
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(SkinsegInputError, match="biopsy_phantom"):
        biopsy_phantom(**kwargs)
