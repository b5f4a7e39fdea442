"""Deep inference engine: streaming, batching, tiling, outputs, progress, bad input."""

import math
import warnings
from dataclasses import replace

import dask.array as da
import numpy as np
import pytest
import torch
import zarr

from skinseg import progress
from skinseg.classes import OCT_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.measure.metrics import dice
from skinseg.models.files import ModelInfo, save_model
from skinseg.models.registry import BUILTIN_DIR
from skinseg.segment import _device, engine
from skinseg.segment._device import logits
from skinseg.segment.engine import iter_segment, segment
from skinseg.segment.classical import segment_classical
from skinseg.segment.normalise import intensity_range, neighbour_indices, normalise, shift_columns
from skinseg.synth.oct import oct_phantom

PIXEL_UM = (10.0, 2.4, 10.0)
FIXED = {"kind": "fixed", "low": 0, "high": 65535}
INFO = ModelInfo(
    name="tiny", task="oct-layers", architecture="monai.UNet",
    arguments={"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [4, 8],
               "strides": [2], "num_res_units": 1},
    in_channels=1, class_table=OCT_CLASSES,
    normalisation={"kind": "percentile", "low": 1, "high": 99.5},
    pixel_size_um=(2.4, 10.0), tile=(64, 64),
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks gain nothing from threads, and lose a lot on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(info: ModelInfo = INFO, seed: int = 0) -> tuple[torch.nn.Module, ModelInfo]:
    torch.manual_seed(seed)
    return info.build(), info


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return oct_phantom((5, 64, 48), PIXEL_UM, seed=1).image


def run(image, model=None, **kw):
    sizes = kw.pop("pixel_size_um", PIXEL_UM[-len(image.shape) :])
    return segment(image, model or tiny(), pixel_size_um=sizes, device="cpu", **kw)


class Spy:
    """A lazy array that records which B-scans each read asked for."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        rows = range(self.shape[0])[key] if isinstance(key, slice) else [key]
        self.reads.append(len(rows))
        return self.data[key]


def test_outputs_2d_3d_probabilities_entropy(volume):
    r = run(volume, probabilities=True, uncertainty=True, batch_size=2)
    assert r.labels.shape == volume.shape and r.labels.dtype == np.uint8
    assert set(np.unique(r.labels)) <= set(OCT_CLASSES.values)
    assert (r.device, r.batch_size, r.model, r.pixel_size_um) == ("cpu", 2, "tiny", PIXEL_UM)
    p = r.probabilities.astype(np.float32)
    assert r.probabilities.dtype == r.uncertainty.dtype == np.float16
    assert p.shape == (7, *volume.shape)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=5e-3)
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(axis=0) / math.log(7)
    np.testing.assert_allclose(r.uncertainty.astype(np.float32), entropy, atol=5e-3)
    assert np.all(np.diff(r.labels.astype(int), axis=1) >= 0)  # post-processed: anatomical order
    raw = run(volume, probabilities=True, postprocess=False, batch_size=2)
    assert np.mean(raw.labels == p.argmax(axis=0)) > 0.999  # float16 ties aside
    # a 2-D B-scan gives what it gives in the tomogram (fixed normalisation: no volume statistics)
    fixed = tiny(replace(INFO, normalisation=FIXED))
    whole = run(volume, fixed, probabilities=True)
    single = run(volume[3], fixed, probabilities=True, uncertainty=True)
    assert single.labels.shape == volume.shape[1:] and single.uncertainty.shape == volume.shape[1:]
    assert single.probabilities.shape == (7, *volume.shape[1:])
    np.testing.assert_array_equal(single.labels, whole.labels[3])


def test_lazy_inputs_stream_and_match_numpy(volume, tmp_path):
    reference = run(volume, batch_size=2).labels
    np.save(tmp_path / "v.npy", volume)
    memmap = np.load(tmp_path / "v.npy", mmap_mode="r")
    z = zarr.create_array(tmp_path / "v.zarr", shape=volume.shape, chunks=(1, 64, 48),
                          dtype=volume.dtype)
    z[:] = volume
    for lazy in (memmap, da.from_array(volume, chunks=(1, 64, 48)), z):
        np.testing.assert_array_equal(run(lazy, batch_size=2).labels, reference)
    spy = Spy(volume)
    np.testing.assert_array_equal(run(spy, batch_size=2).labels, reference)
    assert max(spy.reads) == 2  # never more than one batch of B-scans read at a time


def test_batch_size_does_not_change_results(volume, monkeypatch):
    results = [run(volume, batch_size=b, probabilities=True) for b in (1, 3, 8)]
    monkeypatch.setattr(_device, "CPU_PIXELS_PER_CALL", 64 * 48)  # one B-scan per network call
    results.append(run(volume, batch_size=8, probabilities=True))
    for r in results[1:]:
        np.testing.assert_array_equal(r.labels, results[0].labels)
        np.testing.assert_allclose(r.probabilities.astype(np.float32),
                                   results[0].probabilities.astype(np.float32), atol=2e-3)
    assert [r.batch_size for r in results] == [1, 3, 8, 8]


def test_neighbouring_bscans_as_channels(volume):
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self, record):
            super().__init__()
            self.record = record  # a function: deep copies keep it

        def forward(self, x):
            self.record(x.detach().clone())
            return torch.zeros(x.shape[0], 7, *x.shape[2:])

    info = replace(INFO, in_channels=3, input={"neighbours": 1}, tile=None)
    r = segment(volume, (Probe(seen.append), info), device="cpu", batch_size=2, postprocess=False)
    assert r.labels.shape == volume.shape
    x = torch.cat(seen).numpy()
    assert x.shape[:2] == (5, 3) and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0
    expected = normalise(volume, info.normalisation, intensity_range(volume, info.normalisation))
    expected = expected[neighbour_indices(np.arange(5), 5, 1)]  # edge-replicated: 0 0 1, 0 1 2, ...
    np.testing.assert_allclose(x[..., :64, :48], expected, atol=1e-6)
    assert neighbour_indices(np.array([0, 4]), 5, 1).tolist() == [[0, 0, 1], [3, 4, 4]]


def test_sliding_window_matches_whole_image():
    info = replace(INFO, arguments={**INFO.arguments, "norm": None}, tile=None)
    image = oct_phantom((96, 128), PIXEL_UM, seed=2).image
    net = tiny(info)[0].eval()
    x = torch.from_numpy(normalise(image, info.normalisation))[None, None]
    whole = logits(net, x, None, 2, torch.device("cpu")).softmax(1)
    covering = logits(net, x, (96, 128), 2, torch.device("cpu")).softmax(1)  # one tile
    torch.testing.assert_close(covering, whole)
    tiled = logits(net, x, (64, 64), 2, torch.device("cpu")).softmax(1)  # 2 x 2 tiles
    assert float((tiled - whole).abs().mean()) < 0.01
    assert float((tiled.argmax(1) == whole.argmax(1)).float().mean()) > 0.98
    r = run(image, (net, replace(info, tile=(32, 32))))
    assert r.labels.shape == image.shape


def test_small_and_odd_images_padded():
    image = oct_phantom((21, 13), PIXEL_UM, seed=3).image  # smaller than the tile, odd sizes
    r = run(image, probabilities=True)
    assert r.labels.shape == (21, 13) and r.probabilities.shape == (7, 21, 13)


def test_progress_and_early_close(volume):
    threads = torch.get_num_threads()
    steps = iter_segment(volume, tiny(), pixel_size_um=PIXEL_UM, device="cpu", batch_size=2)
    first = next(steps)
    assert first[:2] == (0, 5) and "tiny on cpu" in first[2]
    assert next(steps)[:2] == (2, 5)
    steps.close()  # stops cleanly after a batch
    assert torch.get_num_threads() == threads
    done = []
    steps = iter_segment(volume, tiny(), device="cpu", batch_size=2)
    engine.progress.run(steps, lambda d, t, m: done.append(d))
    assert done == [0, 2, 4, 5]


def test_out_of_memory_halves_the_batch(volume):
    class Hungry(torch.nn.Module):
        def __init__(self, limit):
            super().__init__()
            self.limit = limit
            self.conv = torch.nn.Conv2d(1, 7, 1)

        def forward(self, x):
            if x.shape[0] > self.limit:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.conv(x)

    r = run(volume, (Hungry(2), INFO), batch_size=8)
    assert r.batch_size == 2 and r.labels.shape == volume.shape
    assert sum("out of memory" in m for m in r.messages) == 2  # 8 -> 4 -> 2
    with pytest.raises(RuntimeError, match="ran out of memory segmenting one 64×48 B-scan"):
        run(volume, (Hungry(0), INFO), batch_size=4)


def test_post_processing_split_over_threads_gives_the_same_result(volume, monkeypatch):
    """On a GPU each batch is post-processed in pieces by several threads (here forced on
    the CPU): labels, probabilities, entropy and the constant-B-scan count are unchanged."""
    mixed = volume.copy()
    mixed[1] = 0
    kw = dict(batch_size=4, probabilities=True, uncertainty=True)
    one = run(mixed, **kw)
    monkeypatch.setattr(engine, "postprocess_threads", lambda device: 3)
    split = run(mixed, **kw)
    np.testing.assert_array_equal(split.labels, one.labels)
    np.testing.assert_array_equal(split.probabilities, one.probabilities)
    np.testing.assert_array_equal(split.uncertainty, one.uncertainty)
    assert split.messages == one.messages and any("1 of 5" in m for m in split.messages)
    assert _device.postprocess_threads(torch.device("cpu")) == 1


def test_constant_bscans_are_air(volume):
    with pytest.warns(UserWarning, match="constant"):
        r = run(np.full((3, 40, 30), 7, np.uint16), probabilities=True, uncertainty=True)
    assert not r.labels.any() and not r.uncertainty.any()
    assert np.all(r.probabilities[0] == 1) and not r.probabilities[1:].any()
    mixed = volume.copy()
    mixed[1] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only a message, no warning, when some B-scans hold data
        r = run(mixed, batch_size=2)
    assert not r.labels[1].any() and r.labels[2].any()
    assert any("1 of 5 B-scan(s) are constant" in m for m in r.messages)


def test_pixel_size_messages(volume):
    r = segment(volume, tiny(), device="cpu")
    assert r.pixel_size_um == (10.0, 2.4, 10.0) and "assumed the model's" in r.messages[0]
    data = ImageData(volume, (10.0, 6.0, 10.0), source="scan.tif")
    r = segment(data, tiny(), device="cpu")
    assert r.pixel_size_um == (10.0, 6.0, 10.0)
    assert any("scan.tif: pixels of (6.0, 10.0) µm" in m and "trained at (2.4, 10.0)" in m
               for m in r.messages)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (ImageData(np.zeros((20, 30, 3), np.uint8), (1.0, 1.0), rgb=True, source="photo.png"),
         "photo.png: an RGB image cannot be segmented"),
        (np.zeros((40, 30, 3), np.uint8), r"looks like an RGB\(A\) image"),
        (np.zeros((2, 2, 40, 30)), "not a B-scan"),
        (np.zeros(30), "not a B-scan"),
        (np.zeros((40, 30), bool), "not a grey-scale intensity image"),
        (np.where(np.eye(40, 30) > 0, np.nan, 1.0), "NaN or infinite"),
    ],
)
def test_bad_images(image, match):
    with pytest.raises(SkinsegInputError, match=match):
        segment(image, tiny(), pixel_size_um=1.0, device="cpu")


def test_nan_outside_the_intensity_sample_named():
    data = np.random.default_rng(0).random((40, 24, 16)).astype(np.float32)
    data[6, 0, 0] = np.nan  # not among the 16 evenly spaced B-scans sampled for the intensity range
    with pytest.raises(SkinsegInputError, match="NaN or infinite values.*B-scans 6–7"):
        segment(data, tiny(), device="cpu", batch_size=2)


@pytest.mark.parametrize(
    ("info", "match"),
    [
        (replace(INFO, class_table=TISSUE_CLASSES, arguments={**INFO.arguments, "out_channels": 3}),
         "not the OCT layer classes"),
        (replace(INFO, in_channels=3, arguments={**INFO.arguments, "in_channels": 3}),
         "takes 3 input channels"),
        (replace(INFO, task="nerves"), "is for 'nerves'"),
        (replace(INFO, arguments={**INFO.arguments, "out_channels": 3}), "gives 3 output channels"),
    ],
)
def test_unfit_models(volume, info, match):
    with pytest.raises(SkinsegInputError, match=match):
        segment(volume, tiny(info), device="cpu")


def test_bad_settings(volume):
    with pytest.raises(SkinsegInputError, match="batch_size"):
        segment(volume, tiny(), batch_size=0)
    with pytest.raises(SkinsegInputError, match="not one of"):
        segment(volume, tiny(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SkinsegInputError, match="not available on this machine"):
            segment(volume, tiny(), device="cuda")


def test_model_file_and_classical(volume, tmp_path):
    net, info = tiny()
    path = save_model(tmp_path / "mine.safetensors", net, info)
    by_file = run(volume, str(path), batch_size=2)
    np.testing.assert_array_equal(by_file.labels, run(volume, (net, info), batch_size=2).labels)
    assert by_file.model == "mine"
    bscan = oct_phantom((128, 64), PIXEL_UM, seed=4).image
    classical = segment(bscan, "classical", pixel_size_um=PIXEL_UM[1:], uncertainty=True)
    assert classical.model == "classical" and classical.probabilities is None
    assert set(np.unique(classical.labels)) <= {0, 4, 6}
    assert "no probabilities" in classical.messages[0]


@pytest.mark.skipif(not any(BUILTIN_DIR.glob("*.safetensors")), reason="no built-in model file yet")
def test_builtin_model_segments_a_phantom():
    phantom = oct_phantom((1, 256, 256), seed=9001)
    r = segment(phantom.image, "builtin", pixel_size_um=phantom.pixel_size_um, device="cpu")
    for value in (4, 6):
        assert dice(r.labels == value, phantom.labels == value) > 0.9


def test_shift_columns_flattens_and_restores():
    data = np.arange(2 * 3 * 10 * 4).reshape(2, 3, 10, 4)
    shifts = np.array([[0, 2, -1, 5], [1, 1, 0, 3]])
    flat = shift_columns(data, shifts, 6)
    assert flat.shape == (2, 3, 6, 4)
    assert flat[1, 2, 0, 3] == data[1, 2, 3, 3] and flat[0, 0, 0, 2] == data[0, 0, 0, 2]  # edge
    back = shift_columns(flat, -shifts, 10)
    rows = np.arange(10)[:, None] - shifts[:, None, None, :]  # flat row of each original row
    inside = np.broadcast_to((rows >= 0) & (rows < 6), data.shape)
    np.testing.assert_array_equal(back[inside], data[inside])


def test_surface_window_models_see_flattened_bscans_and_answer_in_place(volume):
    """A model recording a surface window gets B-scans flattened to the classical surface,
    and its logits are put back where they came from."""
    above, rows, band = 6, 32, 5

    class ByRow(torch.nn.Module):  # epidermis on rows [above, above + band), air above, dermis below
        def forward(self, x):
            k = torch.arange(x.shape[-2])[:, None].expand(x.shape[-2:])
            cls = torch.where(k < above, 0, torch.where(k < above + band, 4, 6))
            return torch.nn.functional.one_hot(cls, 7).permute(2, 0, 1)[None].float().expand(x.shape[0], -1, -1, -1)

    info = replace(INFO, input={"surface_window": {"above": above, "rows": rows}}, tile=None)
    work = iter_segment(volume, (ByRow(), info), pixel_size_um=PIXEL_UM, device="cpu", batch_size=2,
                        postprocess=False)
    steps = []
    r = progress.run(work, lambda *step: steps.append(step))
    n = len(volume)  # progress while the classical surface is found (steps 1…n), then per batch
    assert {total for _, total, _ in steps} == {2 * n} and steps[-1][0] == 2 * n
    assert n == 5 and [d for d, _, _ in steps] == [0, 0, 5, 7, 9, 10]  # start, surface, batches of 2
    assert r.labels.shape == volume.shape
    surface = segment_classical(volume, pixel_size_um=PIXEL_UM).surface
    top = np.argmax(r.labels == 4, axis=1)
    np.testing.assert_array_equal(top, np.floor(surface).astype(int))
    assert ((r.labels == 4).sum(axis=1) == band).all()
    assert (r.labels[:, -1] == 6).all() and (r.labels[:, 0] == 0).all()
    blank = volume.copy()
    blank[1] = 0  # a constant B-scan has no surface to flatten to: air, like any model's
    r = segment(blank, (ByRow(), info), pixel_size_um=PIXEL_UM, device="cpu", postprocess=False)
    assert not r.labels[1].any() and (r.labels[[0, 2]] == 4).any()
    with pytest.warns(UserWarning, match="constant"):
        r = segment(np.zeros_like(volume), (ByRow(), info), pixel_size_um=PIXEL_UM, device="cpu")
    assert not r.labels.any()
