"""Biopsy tissue and nerve segmentation and the whole crossing pipeline (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.measure.metrics import dice, modified_dice
from skinseg.models.files import ModelInfo
from skinseg.progress import run
from skinseg.segment.biopsy import (
    count_crossings, iter_count_crossings, segment_nerves, segment_tissue,
)
from skinseg.synth.biopsy import biopsy_phantom

SHAPE = (400, 640)
PX = 0.5


@pytest.fixture(scope="module", params=["dab", "fluorescent"])
def phantom(request):
    return biopsy_phantom(SHAPE, PX, seed=7, stain=request.param)


def test_classical_tissue_finds_dermis_and_epidermis(phantom):
    result = segment_tissue(phantom.image, PX)
    assert result.stain == phantom.stain  # detected from the slide's brightness
    assert result.labels.dtype == np.uint8 and result.labels.shape == SHAPE
    assert dice(result.labels == 2, phantom.tissue == 2) > 0.98
    assert dice(result.labels == 1, phantom.tissue == 1) > 0.85
    assert dice(result.labels > 0, phantom.tissue > 0) > 0.98
    np.testing.assert_array_equal(result.dermis_probability, result.labels == 2)


def test_classical_tissue_any_quarter_turn(phantom):
    turned = segment_tissue(np.rot90(phantom.image, 1), PX).labels
    assert dice(turned == 2, np.rot90(phantom.tissue, 1) == 2) > 0.98


def test_classical_junction_follows_the_true_dej(phantom):
    # first dermis row per column against the truth's (row r is dermis when r >= dej);
    # smoothing along image rows instead of along the junction gave MAE 1.55–1.85 µm here
    dermis = segment_tissue(phantom.image, PX).labels == 2
    found = dermis.any(axis=0)
    error_um = (np.argmax(dermis, axis=0)[found] - np.ceil(phantom.dej[found])) * PX
    assert found.mean() > 0.95
    assert abs(error_um.mean()) < 0.75 and np.abs(error_um).mean() < 1.2


def test_classical_nerves_trace_fibres(phantom):
    result = segment_nerves(phantom.image, PX)
    assert result.mask.dtype == np.uint8 and set(np.unique(result.mask)) <= {0, 1}
    assert modified_dice(result.mask, phantom.nerves, 3) > 0.9
    assert result.probability.dtype == np.float32 and 0 <= result.probability.min() <= result.probability.max() <= 1


def test_pipeline_counts_close_to_truth_with_progress(phantom):
    steps = []
    analysis = run(iter_count_crossings(phantom.to_image_data()), lambda *s: steps.append(s))
    done = [s[0] for s in steps]
    assert done == sorted(done) and steps[-1][0] == steps[-1][1]
    assert abs(analysis.crossings.count - phantom.count) <= max(2, 0.2 * phantom.count)
    assert analysis.crossings.surface_length_mm > 0 and analysis.crossings.ienfd_per_mm > 0
    assert analysis.tissue.pixel_size_um == analysis.crossings.pixel_size_um == PX


def test_pipeline_stops_cleanly_when_closed(phantom):
    work = iter_count_crossings(phantom.image, PX)
    next(work)
    next(work)
    work.close()
    with pytest.raises(StopIteration):
        next(work)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((64, 64), np.uint8), "grey-scale"),
        (np.zeros((64, 64, 4), np.uint8), "RGBA"),
        (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
    ],
)
def test_not_rgb_refused_with_a_clear_message(image, match):
    for call in (segment_tissue, segment_nerves, count_crossings):
        with pytest.raises(SkinsegInputError, match=match):
            call(image, PX)


@pytest.mark.parametrize("size", [0, -1.0, float("nan"), None])
def test_pixel_size_missing_or_zero_refused(size):
    image = np.full((64, 64, 3), 200, np.uint8)
    with pytest.raises(SkinsegInputError, match="pixel size must be a positive"):
        segment_tissue(image, size)
    with pytest.raises(SkinsegInputError, match="pixel size must be a positive"):
        count_crossings(image, size)


def test_image_data_gives_its_pixel_size():
    p = biopsy_phantom((256, 320), 0.8, seed=3)
    assert segment_nerves(ImageData(p.image, (0.8, 0.8), rgb=True)).pixel_size_um == 0.8


def test_unknown_stain_refused():
    with pytest.raises(SkinsegInputError, match="stain"):
        segment_tissue(np.full((64, 64, 3), 200, np.uint8), PX, stain="he")


def test_no_epidermis_gives_count_zero_and_a_warning():
    p = biopsy_phantom(SHAPE, PX, seed=7)
    dermis_only = np.ascontiguousarray(p.image[int(p.dej.max()) + 20 :])
    analysis = count_crossings(dermis_only, PX)
    assert not (analysis.tissue.labels == 1).any()
    assert (analysis.tissue.labels == 2).mean() > 0.9
    assert analysis.crossings.count == 0
    assert any("epidermis" in w for w in analysis.crossings.warnings)


def test_no_nerves_gives_count_zero(phantom):
    """The phantom with its fibres painted over by the nearest tissue outside them."""
    fibres = ndi.binary_dilation(phantom.nerves > 0, iterations=4)
    nearest = ndi.distance_transform_edt(fibres, return_distances=False, return_indices=True)
    analysis = count_crossings(phantom.image[tuple(nearest)], PX)
    assert not analysis.nerves.mask.any()
    assert (analysis.tissue.labels == 1).any()
    assert analysis.crossings.count == 0 and analysis.crossings.ienfd_per_mm == 0


def test_blank_slide_is_all_background():
    result = segment_tissue(np.full((128, 128, 3), 250, np.uint8), PX)
    assert not result.labels.any()


def _untrained(task: str, table, architecture: str, arguments: dict, **extra) -> tuple:
    torch.manual_seed(0)
    info = ModelInfo(name=f"tiny {task}", task=task, architecture=architecture,
                     arguments={**arguments, "in_channels": 3, "out_channels": len(table.classes)},
                     in_channels=3, class_table=table, normalisation={"kind": "fixed", "low": 0, "high": 255},
                     **extra)
    return info.build(), info


def test_builtin_networks_segment_a_held_out_phantom(phantom):
    """The shipped phantom-trained networks (seeds 20000…) on a phantom they never saw."""
    tissue = segment_tissue(phantom.image, PX, method="builtin")
    assert dice(tissue.labels == 2, phantom.tissue == 2) > 0.98
    assert dice(tissue.labels == 1, phantom.tissue == 1) > 0.9
    nerves = segment_nerves(phantom.image, PX, method="builtin")
    assert modified_dice(nerves.mask, phantom.nerves > 0, k=3) > 0.9


def test_networks_run_on_whole_images_tiled_and_resampled():
    p = biopsy_phantom((200, 300), PX, seed=5)
    hed = _untrained("biopsy-nerves", NERVE_CLASSES, "hed", {"channels": [4, 8]}, tile=(64, 64),
                     input={"size_divisor": 2})
    nerves = segment_nerves(p.image, PX, hed, device="cpu")
    assert nerves.mask.shape == (200, 300) and nerves.probability.shape == (200, 300)
    assert nerves.method == "tiny biopsy-nerves"
    unet = _untrained("biopsy-tissue", TISSUE_CLASSES, "monai.UNet",
                      {"spatial_dims": 2, "channels": [4, 8], "strides": [2]}, pixel_size_um=(2.0, 2.0))
    tissue = segment_tissue(p.image, PX, unet, device="cpu")  # run at 2 µm, scores back at 0.5 µm
    assert tissue.labels.shape == (200, 300) and set(np.unique(tissue.labels)) <= {0, 1, 2}
    assert np.all((tissue.dermis_probability >= 0) & (tissue.dermis_probability <= 1))
    analysis = count_crossings(p.image, PX, tissue_method=unet, nerve_method=hed, device="cpu")
    assert analysis.crossings.count >= 0


def test_model_for_the_wrong_task_refused():
    hed = _untrained("biopsy-nerves", NERVE_CLASSES, "hed", {"channels": [4]})
    with pytest.raises(SkinsegInputError, match="biopsy-tissue needs 3"):
        segment_tissue(np.full((64, 64, 3), 200, np.uint8), PX, hed)
