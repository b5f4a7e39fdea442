"""Training augmentation: OCT keeps depth order, labels stay aligned, draws are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from skinseg.synth.oct import OCTAnatomy, oct_phantom
from skinseg.train.augment import Augmentation, augment, crop_only, oct_augmentation, rgb_augmentation

NO_INTENSITY = dict(contrast=0.0, brightness=0.0, gamma=(1.0, 1.0), blur_sigma=0.0, speckle=0.0)


@pytest.fixture(scope="module")
def bscan():
    anatomy = OCTAnatomy(surface_um=40.0, epidermis_um=60.0, rete_depth_um=20.0)
    ph = oct_phantom((1, 96, 128), seed=3, glass=True, gel=True, anatomy=anatomy)
    return ph.image[0].astype(np.float32)[None] / 65535, ph.labels[0]


def _decreasing_columns(labels: np.ndarray) -> int:
    """A-scans where a class lies on average above one of lower value (OCT value = depth order).

    Mean rows, not pixel by pixel: nearest-neighbour resampling of a tilted two-pixel DEJ
    band leaves one-pixel stair steps that are aliasing, not a change of order.
    """
    rows = np.arange(labels.shape[0], dtype=float)[:, None]
    bad = np.zeros(labels.shape[1], dtype=bool)
    previous = np.full(labels.shape[1], -np.inf)
    for v in np.unique(labels):
        inside = labels == v
        count = inside.sum(axis=0)
        mean_row = np.where(count > 0, (rows * inside).sum(axis=0) / np.maximum(count, 1), np.nan)
        bad |= mean_row <= previous  # NaN compares False: absent classes are skipped
        previous = np.where(count > 0, mean_row, previous)
    return int(bad.sum())


def test_oct_augmentation_keeps_depth_order(bscan):
    image, labels = bscan
    assert _decreasing_columns(labels) == 0
    rng = np.random.default_rng(0)
    aug = oct_augmentation()
    for _ in range(40):
        img, lab = augment(image, labels, rng, aug, (64, 64))
        assert _decreasing_columns(lab) == 0
    # the same check catches a vertical flip or a 90° turn
    turned = [augment(image, labels, rng, rgb_augmentation(), (64, 64))[1] for _ in range(20)]
    assert any(_decreasing_columns(lab) > 0 for lab in turned)


@pytest.mark.parametrize("bad", [dict(flip_vertical=True), dict(rot90=True), dict(rotation_deg=45.0)])
def test_oct_augmentation_refuses_depth_flips(bad):
    with pytest.raises(ValueError, match="OCT"):
        Augmentation("oct", **bad)


@pytest.mark.parametrize("make", [oct_augmentation, rgb_augmentation])
def test_labels_stay_aligned_with_image(bscan, make):
    _, labels = bscan
    image = np.stack([labels.astype(np.float32)] * 3)  # image = labels: any misalignment shows
    aug = make(**NO_INTENSITY, colour=0.0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        img, lab = augment(image, labels, rng, aug, (48, 40))
        assert img.shape == (3, 48, 40) and lab.shape == (48, 40) and lab.dtype == labels.dtype
        agree = np.mean(np.rint(img[0]) == lab)
        assert agree > 0.93, agree  # linear interpolation differs only along class edges


def test_geometry_varies_and_is_seeded(bscan):
    image, labels = bscan
    aug = oct_augmentation()
    a = [augment(image, labels, np.random.default_rng(5), aug, (64, 64)) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    np.testing.assert_array_equal(a[0][1], a[1][1])
    rng = np.random.default_rng(6)
    draws = [augment(image, labels, rng, aug, (64, 64))[1] for _ in range(5)]
    assert len({d.tobytes() for d in draws}) == 5


def test_intensity_changes_image_only(bscan):
    image, labels = bscan
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    geometry = crop_only("oct")
    plain_img, plain_lab = augment(image, labels, rng_a, geometry, (64, 64))
    changed = Augmentation("oct", flip_lateral=False, contrast=0.3, gamma=(0.5, 2.0), speckle=0.5)
    img, lab = augment(image, labels, rng_b, changed, (64, 64))
    np.testing.assert_array_equal(lab, plain_lab)
    assert np.abs(img - plain_img).mean() > 0.01


def test_small_image_is_centred_and_edge_filled():
    image = np.arange(20 * 10, dtype=np.float32).reshape(1, 20, 10)
    labels = np.repeat(np.arange(20, dtype=np.uint8)[:, None] // 5, 10, axis=1)
    img, lab = augment(image, labels, np.random.default_rng(0), crop_only("oct"), (32, 16))
    assert img.shape == (1, 32, 16)
    assert (lab[0] == 0).all() and (lab[-1] == 3).all()  # edge rows repeated above and below
    assert _decreasing_columns(lab) == 0


def test_rgb_colour_jitter_changes_channels_differently():
    image = (0.5 + np.random.default_rng(0).normal(0, 0.1, (3, 32, 32))).astype(np.float32)
    labels = np.zeros((32, 32), np.uint8)
    aug = rgb_augmentation(rotation_deg=0.0, shear_deg=0.0, zoom=(1.0, 1.0), colour=0.3, **NO_INTENSITY)
    img, _ = augment(image, labels, np.random.default_rng(3), aug, (32, 32))
    ratios = img.reshape(3, -1).std(axis=1) / image.reshape(3, -1).std(axis=1)
    assert np.ptp(ratios) > 0.02


def test_focus_keeps_a_rare_class_in_the_patch():
    labels = np.zeros((200, 200), np.uint8)
    labels[180:183, 10:13] = 5  # a small rare region near a corner
    image = labels[None].astype(np.float32)
    rng = np.random.default_rng(4)
    aug = oct_augmentation()
    focused = [augment(image, labels, rng, aug, (48, 48), focus=(181, 11))[1] for _ in range(20)]
    anywhere = [augment(image, labels, rng, aug, (48, 48))[1] for _ in range(20)]
    assert all((lab == 5).any() for lab in focused)
    assert sum((lab == 5).any() for lab in anywhere) < 10
