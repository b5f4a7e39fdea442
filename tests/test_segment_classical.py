"""Classical OCT layer segmentation: accuracy, conventions, progress, bad input."""

from pathlib import Path

import numpy as np
import pytest

from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.io.masks import band_mask_to_labels
from skinseg.measure.boundaries import dej_depth, surface_depth
from skinseg.measure.metrics import boundary_mae, count_components, dice, thickness_correlation
from skinseg.segment.classical import ClassicalParams, iter_segment_classical, segment_classical
from skinseg.synth.oct import oct_phantom

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PIXEL_UM = (2.5, 10.0)  # axial, lateral


def coverage(depth: np.ndarray, rows: int) -> np.ndarray:
    """Fraction of each pixel ``(rows, width)`` lying below a boundary at ``depth``."""
    return np.clip(np.arange(rows)[:, None] + 1.0 - depth[None, :], 0.0, 1.0)


def synthetic_bscan(
    seed: int, rows: int = 160, width: int = 128, wavy: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint16 B-scan with sharp layers (air, bright entry, dark epidermis, bright dermis).

    The DEJ runs 30 px under the surface with two rete-ridge dips (8 and 6 px deep),
    plus ``wavy`` px of slow up-and-down thickness change. Returns the image and the
    true sub-pixel surface and DEJ depths.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(width)
    surface = 40.3 + 6 * np.sin(2 * np.pi * x / 90 + seed) + 2 * seed
    dips = 8 * np.exp(-0.5 * ((x - 40) / 3) ** 2) + 6 * np.exp(-0.5 * ((x - 95) / 2.5) ** 2)
    dej = surface + 30.0 + dips + wavy * np.sin(2 * np.pi * x / 60)
    image = (
        0.08
        + 0.82 * coverage(surface, rows)
        - 0.45 * coverage(surface + 4, rows)
        + 0.30 * coverage(dej, rows)
        + rng.normal(0, 0.04, (rows, width))
    )
    return (np.clip(image, 0, 1) * 60000).astype(np.uint16), surface, dej


def test_synthetic_bscan_boundaries_within_one_pixel():
    image, surface, dej = synthetic_bscan(0)
    result = segment_classical(image, pixel_size_um=PIXEL_UM)
    assert result.labels.shape == image.shape and result.labels.dtype == np.uint8
    assert result.surface.shape == result.dej.shape == (image.shape[1],)
    assert result.surface.dtype == result.dej.dtype == np.float32
    assert np.abs(result.surface - surface).max() < 1.0
    assert np.mean(np.abs(result.dej - dej)) < 1.0
    assert set(np.unique(result.labels)) == {0, 4, 6}
    assert result.thickness_um.mean() == pytest.approx(2.5 * np.mean(result.dej - result.surface))


def test_lower_baseline_stiffness_follows_slow_thickness_changes():
    image, _, dej = synthetic_bscan(3, wavy=3.0)
    stiff = segment_classical(image, pixel_size_um=PIXEL_UM)
    supple = segment_classical(
        image, pixel_size_um=PIXEL_UM, params=ClassicalParams(baseline_stiffness=0.2)
    )
    assert np.mean(np.abs(supple.dej - dej)) < 1.0 < np.mean(np.abs(stiff.dej - dej))


def test_tomogram_matches_its_bscans():
    scans = [synthetic_bscan(seed) for seed in range(3)]
    volume = np.stack([s[0] for s in scans])
    result = segment_classical(volume, pixel_size_um=(10.0, *PIXEL_UM), batch_size=2)
    assert result.labels.shape == volume.shape
    assert result.surface.shape == (3, volume.shape[2])
    for i, (_, surface, dej) in enumerate(scans):
        assert np.abs(result.surface[i] - surface).max() < 1.0
        assert np.mean(np.abs(result.dej[i] - dej)) < 1.0


def test_labels_follow_the_boundary_convention():
    image, _, _ = synthetic_bscan(1)
    result = segment_classical(image, pixel_size_um=PIXEL_UM)
    assert np.abs(surface_depth(result.labels) - result.surface).max() <= 0.5
    assert np.abs(dej_depth(result.labels) - result.dej).max() <= 0.5
    assert count_components(result.labels == 4) == 1


def test_input_type_does_not_change_the_result():
    image, _, _ = synthetic_bscan(2)
    as_uint16 = segment_classical(image, pixel_size_um=PIXEL_UM)
    as_float = segment_classical(image.astype(np.float64) / 7.0, pixel_size_um=PIXEL_UM)
    as_uint8 = segment_classical((image // 256).astype(np.uint8), pixel_size_um=PIXEL_UM)
    np.testing.assert_allclose(as_float.surface, as_uint16.surface, atol=1e-3)
    assert np.mean(as_float.labels != as_uint16.labels) < 1e-4
    assert np.abs(as_uint8.surface - as_uint16.surface).mean() < 0.2


def test_image_data_carries_its_pixel_size():
    image, _, _ = synthetic_bscan(0)
    result = segment_classical(ImageData(image, PIXEL_UM, source="scan.tif"))
    assert result.pixel_size_um == PIXEL_UM


def test_unknown_pixel_size_warns():
    image, _, _ = synthetic_bscan(0)
    with pytest.warns(UserWarning, match="pixel size unknown"):
        result = segment_classical(image)
    assert result.pixel_size_um == (1.0, 1.0)


def test_phantom_under_glass_and_gel_finds_the_skin_not_the_glass():
    ph = oct_phantom((2, 192, 160), seed=11, glass=True, gel=True)
    result = segment_classical(ph.image, pixel_size_um=ph.pixel_size_um)
    # the glass and gel lie 10+ px above the skin; the surface must stay on the skin
    assert np.all(ph.surface_depth - ph.gel_top > 8)
    assert boundary_mae(result.surface, ph.surface_depth) < 2.5
    assert boundary_mae(result.dej, ph.dej_depth) < 4.0
    centres = np.arange(192)[None, :, None] + 0.5
    true_dermis = centres >= ph.dej_depth[:, None, :]
    assert dice(result.labels == 6, true_dermis) > 0.97


class CountingVolume:
    """Lazy stand-in for a tomogram that records which B-scan slices were read."""

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_progress_generator_reports_and_returns_the_result():
    volume = np.stack([synthetic_bscan(seed)[0] for seed in range(3)])
    steps = iter_segment_classical(volume, pixel_size_um=(10.0, *PIXEL_UM), batch_size=1)
    progress = []
    with pytest.raises(StopIteration) as stop:
        while True:
            progress.append(next(steps))
    assert [p[:2] for p in progress] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert all(isinstance(p[2], str) and p[2] for p in progress)
    assert stop.value.value.labels.shape == volume.shape


def test_closing_the_generator_stops_the_work():
    volume = CountingVolume(np.stack([synthetic_bscan(seed % 3)[0] for seed in range(6)]))
    steps = iter_segment_classical(volume, pixel_size_um=(10.0, *PIXEL_UM), batch_size=2)
    assert next(steps)[:2] == (0, 6)
    assert next(steps)[:2] == (2, 6)
    steps.close()
    chunk_reads = [key for key in volume.reads if isinstance(key, slice)]
    assert chunk_reads == [slice(0, 2)]
    with pytest.raises(StopIteration):
        next(steps)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros(64), "not a B-scan"),
        (np.zeros((2, 2, 64, 64)), "not a B-scan"),
        (np.zeros((64, 64, 3), np.uint8), "RGB"),
        (np.full((64, 64), 7.0), "constant"),
        (np.zeros((8, 64)), "too small"),
        (np.zeros((64, 64), complex), "data type"),
    ],
)
def test_bad_input_is_refused_clearly(image, message):
    with pytest.raises(SkinsegInputError, match=message):
        segment_classical(image, pixel_size_um=1.0)


def test_nan_is_refused_with_the_source_name():
    image = synthetic_bscan(0)[0].astype(np.float32)
    image[5, 5] = np.nan
    with pytest.raises(SkinsegInputError, match="scan.tif.*NaN"):
        segment_classical(ImageData(image, PIXEL_UM, source="scan.tif"))


def test_bad_settings_are_refused():
    image = synthetic_bscan(0)[0]
    with pytest.raises(SkinsegInputError, match="pixel_size_um"):
        segment_classical(image, pixel_size_um=(1.0, -2.0))
    with pytest.raises(SkinsegInputError, match="max_epidermis_um"):
        ClassicalParams(min_epidermis_um=50, max_epidermis_um=40)
    with pytest.raises(SkinsegInputError, match="RGB"):
        segment_classical(ImageData(np.zeros((32, 32, 3), np.uint8), (1.0, 1.0), rgb=True))


def test_band_mask_to_labels():
    mask = np.zeros((8, 4), np.uint8)
    mask[2:5, 0] = 255
    mask[3:4, 1] = 200
    mask[3, 2] = 100  # under the threshold: no band in this column
    mask[1, 3], mask[4, 3] = 255, 255  # a gap inside the band is filled
    labels = band_mask_to_labels(mask)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[:, 0], [0, 0, 4, 4, 4, 6, 6, 6])
    np.testing.assert_array_equal(labels[:, 1], [0, 0, 0, 4, 6, 6, 6, 6])
    np.testing.assert_array_equal(labels[:, 2], 0)
    np.testing.assert_array_equal(labels[:, 3], [0, 4, 4, 4, 4, 6, 6, 6])
    np.testing.assert_array_equal(surface_depth(labels[None])[0], [2, 3, np.nan, 1])
    np.testing.assert_array_equal(dej_depth(labels[None])[0], [5, 4, np.nan, 5])
    np.testing.assert_array_equal(band_mask_to_labels(mask > 127), labels)
    with pytest.raises(SkinsegInputError, match="RGB"):
        band_mask_to_labels(np.zeros((8, 4, 3)))


@pytest.mark.realdata
def test_real_face_bscans_meet_the_targets():
    folder = DATA / "skin-oct-face-dev"
    if not (folder / "images").is_dir():
        pytest.skip(f"real data not found at {folder}")
    skimage_io = pytest.importorskip("skimage.io")
    paths = sorted((folder / "images").glob("*.pgm"))
    images = np.stack([skimage_io.imread(p) for p in paths]).astype(np.uint16)
    masks = [skimage_io.imread(folder / "masks" / f"{p.stem}.png") for p in paths]
    truth = band_mask_to_labels(np.stack(masks))
    result = segment_classical(images, pixel_size_um=(1.0, 3.3 * 370 / 512, 10.0))
    t_surface, t_dej = surface_depth(truth), dej_depth(truth)
    scores = np.array([
        (
            dice(result.labels[i] == 4, truth[i] == 4),
            boundary_mae(result.surface[i], t_surface[i]),
            boundary_mae(result.dej[i], t_dej[i]),
            boundary_mae(t_surface[i] + 30, t_dej[i]),
            thickness_correlation(result.surface[i], result.dej[i], t_surface[i], t_dej[i]),
        )
        for i in range(len(paths))
    ])
    epidermis_dice, surface_mae, dej_mae, rule_mae, correlation = scores.mean(axis=0)
    assert epidermis_dice >= 0.945
    assert surface_mae <= 0.75
    assert dej_mae <= 2.8 and dej_mae < rule_mae
    assert correlation >= 0.5
    assert all(count_components(result.labels[i] == 4) == 1 for i in range(len(paths)))
