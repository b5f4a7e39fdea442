"""Training engine on tiny phantoms: loss falls, seeded, early stopping, best file, cancel, resume.

Also the training slices (annotated-slice rule, bad input) and the block validation split.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.models.files import load_model, read_model_info
from skinseg.progress import run
from skinseg.segment.normalise import shift_columns, surface_shifts
from skinseg.synth.oct import OCTAnatomy, oct_phantom
from skinseg.train import (
    SliceKey,
    TrainConfig,
    annotated_slices,
    block_split,
    crop_only,
    frequency_class_weights,
    new_model_info,
    seed_class_weights,
    slices_for_model,
    slices_from_pairs,
    state_path,
    train,
)
from skinseg.train.engine import _prefetched

TINY_NET = {"spatial_dims": 2, "channels": [4, 8], "strides": [2], "num_res_units": 0}
CONFIG = TrainConfig(
    epochs=4, batch_size=4, patch=(32, 32), steps_per_epoch=2, learning_rate=1e-2,
    patience=10, augmentation=crop_only("oct"), device="cpu",
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks train fastest on one thread (several contend on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantom():
    anatomy = OCTAnatomy(surface_um=30.0, epidermis_um=50.0, hairs_per_mm=0.0)
    return oct_phantom((8, 64, 48), seed=11, glass=True, gel=True, anatomy=anatomy)


@pytest.fixture(scope="module")
def sets(phantom):
    slices = slices_from_pairs([(phantom.image, phantom.labels, "phantom")], OCT_CLASSES)
    return slices, *slices.split(0.25)


@pytest.fixture(scope="module")
def info(sets):
    return new_model_info(sets[0], name="tiny", task="oct-layers", arguments=TINY_NET, tile=(32, 32))


def _weights(path):
    return load_model(path)[0].state_dict()


def _steps_until_reports(gen, n_reports):
    steps = []
    for step in gen:
        steps.append(step)
        if sum(s.report is not None for s in steps) == n_reports:
            break
    return steps


def test_training_lowers_the_loss_and_writes_a_model_file(sets, info, tmp_path):
    _, tr, va = sets
    out = tmp_path / "m.safetensors"
    steps = []
    result = run(train(tr, va, out, start=info, config=replace(CONFIG, epochs=6), data={"what": "test"}),
                 lambda *s: steps.append(s))
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < losses[0] and result.history[-1].val_loss < result.history[0].val_loss
    assert [d for d, _, _ in steps] == list(range(1, 6 * 3 + 1))  # 2 batches + 1 validation per epoch
    saved = read_model_info(out)
    assert saved.class_table == OCT_CLASSES and saved.architecture == "monai.UNet"
    history = saved.training["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert set(history[0]) >= {"train_loss", "val_loss", "val_dice", "learning_rate", "seconds"}
    assert set(history[0]["val_dice"]) == set(OCT_CLASSES.names)
    assert saved.training["best_epoch"] == result.best_epoch and saved.training["data"] == {"what": "test"}
    assert saved.training["stopped"] == "epochs" and not state_path(out).exists()
    net, _ = load_model(out)
    x = torch.from_numpy(va.sample(0)[0])[None]
    torch.testing.assert_close(net(x), result.network(x))


def test_epoch_reports_ride_on_the_progress_steps(sets, info, tmp_path):
    _, tr, va = sets
    steps = list(train(tr, va, tmp_path / "m.safetensors", start=info, config=replace(CONFIG, epochs=2)))
    done, total, _ = steps[-1]
    assert done == total == 6
    reports = [s.report for s in steps if s.report is not None]
    assert [r.epoch for r in reports] == [1, 2] and reports[0].learning_rate == CONFIG.learning_rate
    assert all(0.0 <= v <= 1.0 for v in reports[-1].val_dice.values() if not np.isnan(v))


def test_same_seed_same_weights(sets, info, tmp_path):
    _, tr, va = sets
    config = replace(CONFIG, epochs=2, augmentation=None)  # default OCT augmentation: random draws
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    run(train(tr, va, a, start=info, config=config))
    run(train(tr, va, b, start=info, config=config))
    run(train(tr, va, c, start=info, config=replace(config, seed=1)))
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_early_stopping_stops(sets, info, tmp_path):
    _, tr, va = sets
    out = tmp_path / "m.safetensors"
    frozen = replace(CONFIG, epochs=20, learning_rate=0.0, patience=2)  # nothing can improve
    result = run(train(tr, va, out, start=info, config=frozen))
    assert result.stopped == "early stopping" and result.best_epoch == 1
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert read_model_info(out).training["stopped"] == "early stopping"


@pytest.mark.parametrize("average", [0.0, 0.9])
def test_cancel_keeps_best_and_resume_continues_exactly(sets, info, tmp_path, average):
    _, tr, va = sets
    config = replace(CONFIG, epochs=4, augmentation=None, weight_average=average)
    whole = tmp_path / "whole.safetensors"
    run(train(tr, va, whole, start=info, config=config))

    out = tmp_path / "m.safetensors"
    gen = train(tr, va, out, start=info, config=config)
    _steps_until_reports(gen, 2)
    next(gen)  # one batch into epoch 3, then the user presses Stop
    gen.close()
    saved = read_model_info(out)
    assert saved.training["stopped"] == "interrupted" and saved.training["epochs_run"] == 2
    assert state_path(out).exists()
    load_model(out)  # a valid model file

    steps = list(train(tr, va, out, config=config, resume=True))
    assert [s.report.epoch for s in steps if s.report is not None] == [3, 4]
    assert steps[0][0] == 2 * 3 + 1  # progress continues where it stopped
    saved = read_model_info(out)
    assert [h["epoch"] for h in saved.training["history"]] == [1, 2, 3, 4]
    assert not state_path(out).exists() and not out.with_suffix(".average.safetensors").exists()
    wa, wb = _weights(whole), _weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_weight_average_is_what_gets_validated_and_saved(sets, info, tmp_path):
    _, tr, va = sets
    runs = {a: run(train(tr, va, tmp_path / f"{a}.safetensors", start=info,
                         config=replace(CONFIG, epochs=2, weight_average=a))) for a in (0.0, 0.9)}
    plain, averaged = _weights(tmp_path / "0.0.safetensors"), _weights(tmp_path / "0.9.safetensors")
    assert set(plain) == set(averaged)  # a plain network file, no averaging bookkeeping
    assert any(not torch.equal(plain[k], averaged[k]) for k in plain)
    assert runs[0.9].history[0].val_loss != runs[0.0].history[0].val_loss
    with pytest.raises(ValueError, match="weight_average"):
        TrainConfig(weight_average=1.0)


def test_resume_without_state_is_a_clear_error(sets, tmp_path):
    _, tr, va = sets
    with pytest.raises(SkinsegInputError, match="no resume state"):
        next(train(tr, va, tmp_path / "m.safetensors", config=CONFIG, resume=True))


def test_resume_with_a_damaged_weight_average_is_a_clear_error(sets, info, tmp_path):
    _, tr, va = sets
    out = tmp_path / "m.safetensors"
    config = replace(CONFIG, epochs=3, weight_average=0.9)
    gen = train(tr, va, out, start=info, config=config)
    _steps_until_reports(gen, 1)
    gen.close()
    average = out.with_suffix(".average.safetensors")
    average.write_bytes(b"cut short")
    with pytest.raises(SkinsegInputError, match="weight average missing or damaged"):
        next(train(tr, va, out, config=config, resume=True))
    load_model(out)  # the best model so far is still there


def test_fine_tune_from_a_model_file(sets, info, tmp_path):
    _, tr, va = sets
    first = tmp_path / "first.safetensors"
    run(train(tr, va, first, start=info, config=replace(CONFIG, epochs=1)))
    result = run(train(tr, va, tmp_path / "tuned.safetensors", start=first, config=replace(CONFIG, epochs=1)))
    assert result.info.training["started_from"] == {"name": "tiny", "file": "first.safetensors"}
    assert result.info.name == "tuned (fine-tuned from tiny)"
    assert load_model(tmp_path / "tuned.safetensors")[1].name == result.info.name


def test_classes_or_channels_that_do_not_fit_the_model(sets, info, phantom, tmp_path):
    slices, tr, va = sets
    tissue = slices_from_pairs([(phantom.image, np.minimum(phantom.labels, 2))], TISSUE_CLASSES)
    with pytest.raises(SkinsegInputError, match="class table"):
        next(train(tissue, va, tmp_path / "m.safetensors", start=info, config=CONFIG))
    three = slices_from_pairs([(phantom.image, phantom.labels)], OCT_CLASSES, neighbours=1)
    with pytest.raises(SkinsegInputError, match="channel"):
        next(train(three, va, tmp_path / "m.safetensors", start=info, config=CONFIG))
    empty = slices.subset([])
    with pytest.raises(SkinsegInputError, match="empty"):
        next(train(tr, empty, tmp_path / "m.safetensors", start=info, config=CONFIG))


@pytest.mark.parametrize("table", [TISSUE_CLASSES, NERVE_CLASSES], ids=lambda t: t.name)
def test_the_same_engine_trains_colour_presets(table, tmp_path):
    rng = np.random.default_rng(0)
    labels = (np.arange(48)[:, None] * len(table.classes) // 48).repeat(40, axis=1).astype(np.uint8)
    pairs = []
    for i in range(4):
        rgb = (labels[..., None] * 60 + rng.integers(0, 40, (48, 40, 3))).astype(np.uint8)
        pairs.append((rgb, labels, f"image {i}"))
    slices = slices_from_pairs(pairs, table)
    tr, va = slices.split(0.25)
    info = new_model_info(slices, name="rgb", task=table.name, arguments=TINY_NET)
    config = replace(CONFIG, epochs=1, augmentation=None)
    result = run(train(tr, va, tmp_path / "rgb.safetensors", start=info, config=config))
    saved = read_model_info(result.path)
    assert saved.in_channels == 3 and saved.class_table == table and saved.normalisation["kind"] == "fixed"
    assert slices.modality == "rgb" and set(result.history[0].val_dice) == set(table.names)


def test_only_annotated_slices_are_used(phantom):
    labels = np.zeros_like(phantom.labels)
    labels[2] = phantom.labels[2]
    labels[5, 10, 7] = 6  # one painted pixel makes a slice annotated; the rest of it is background
    assert annotated_slices(labels).tolist() == [2, 5]
    assert annotated_slices(labels[0]).tolist() == [] and annotated_slices(labels[2]).tolist() == [0]
    slices = slices_from_pairs([(phantom.image, labels, "vol")], OCT_CLASSES)
    assert slices.keys == [SliceKey("vol", 2), SliceKey("vol", 5)]
    assert np.bincount(slices.labels[1].ravel()).tolist() == [48 * 64 - 1, 0, 0, 0, 0, 0, 1]
    x = slices.images[0]
    assert x.shape == (1, 64, 48) and x.dtype == np.float32 and 0.0 <= x.min() < x.max() <= 1.0
    with pytest.raises(SkinsegInputError, match="no annotated slices"):
        slices_from_pairs([(phantom.image, np.zeros_like(labels))], OCT_CLASSES)


def test_bad_pairs_are_clear_errors(phantom):
    image, labels = phantom.image, phantom.labels
    with pytest.raises(SkinsegInputError, match="vol: image .* do not match"):
        slices_from_pairs([(image, labels[:, :-1], "vol")], OCT_CLASSES)
    with pytest.raises(SkinsegInputError, match=r"values \[9\]"):
        slices_from_pairs([(image, np.where(labels == 6, 9, labels), "vol")], OCT_CLASSES)
    nan = image.astype(np.float32)
    nan[3, 5, 5] = np.nan
    with pytest.raises(SkinsegInputError, match="NaN"):
        slices_from_pairs([(nan, labels, "vol")], OCT_CLASSES)


def test_colour_pairs_and_neighbour_channels(phantom):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    labels = np.zeros((40, 30), np.uint8)
    labels[20:] = 2
    slices = slices_from_pairs([(rgb, labels)], TISSUE_CLASSES)
    assert slices.in_channels == 3 and slices.modality == "rgb"
    np.testing.assert_allclose(slices.images[0][1], rgb[..., 1] / 255.0, atol=1e-6)
    stack = slices_from_pairs([(phantom.image, phantom.labels)], OCT_CLASSES, neighbours=1)
    assert stack.in_channels == 3
    np.testing.assert_array_equal(stack.images[3][0], stack.images[2][1])  # slice 3's upper neighbour
    info = new_model_info(stack, name="n", task="oct-layers", arguments=TINY_NET)
    assert info.input == {"neighbours": 1}
    assert slices_for_model([(phantom.image, phantom.labels)], info).in_channels == 3


def test_validation_split_takes_whole_blocks():
    keys = [SliceKey("a", i) for i in range(20)] + [SliceKey("b", i) for i in range(3, 13)]
    train_idx, val_idx = block_split(keys, val_fraction=0.2, block_size=3)
    assert len(val_idx) == 6 and set(train_idx) | set(val_idx) == set(range(30))
    assert not set(train_idx) & set(val_idx)
    runs = np.split(val_idx, np.flatnonzero(np.diff(val_idx) != 1) + 1)
    for r in runs:  # each validation block: 3 consecutive slices of one source
        assert len(r) == 3 and len({keys[i].source for i in r}) == 1
    assert block_split(keys, 0.2, 3)[1].tolist() == val_idx.tolist()  # deterministic
    with pytest.raises(SkinsegInputError, match="at least 2"):
        block_split(keys[:1])


def test_class_weights():
    w = seed_class_weights(OCT_CLASSES)
    assert w[OCT_CLASSES.value_of("DEJ")] == 20 and w[OCT_CLASSES.value_of("gel")] == 10 and w[6] == 1
    f = frequency_class_weights([1000, 0, 10, 100])
    assert f[1] == 1.0 and f[2] > f[3] > f[0]


def test_dice_over_present_classes_only():
    from monai.losses import DiceLoss

    from skinseg.train import segmentation_loss

    target = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    target[:, :, 4:] = 2  # classes 0 and 2 present, 1 never
    logits = 3.0 * torch.nn.functional.one_hot(target[:, 0], 3).permute(0, 3, 1, 2).float()
    every = segmentation_loss(lambda_ce=0.0)(logits, target)
    present = segmentation_loss(lambda_ce=0.0, present_only=True)(logits, target)
    dice = DiceLoss(to_onehot_y=True, softmax=True, batch=True, reduction="none")(logits, target).flatten()
    assert torch.isclose(every, dice.mean())  # default: the mean over all classes, as before
    assert torch.isclose(present, dice[[0, 2]].mean())
    assert dice[1] > 0.99 and present < 0.25 * every  # the absent class swamps the default
    ce = segmentation_loss(lambda_dice=0.0, present_only=True)(logits, target)
    assert torch.isclose(ce, torch.nn.functional.cross_entropy(logits, target[:, 0]))


def test_fine_tune_on_labels_with_fewer_classes(sets, info, tmp_path):
    """The config option reaches the loss: with it, an absent class no longer adds ~1."""
    slices, train_set, val_set = sets
    few = replace(train_set, labels=[np.where(lab == 1, 0, lab).astype(np.uint8) for lab in train_set.labels])
    config = replace(CONFIG, epochs=1)
    runs = {flag: run(train(few, val_set, tmp_path / f"{flag}.safetensors", start=info,
                            config=replace(config, dice_present_only=flag)))
            for flag in (False, True)}
    assert runs[True].history[0].train_loss < runs[False].history[0].train_loss
    assert read_model_info(tmp_path / "True.safetensors").training["config"]["dice_present_only"]


def test_shipped_builtin_model_is_small_phantom_trained_and_works():
    from skinseg.measure.boundaries import surface_depth
    from skinseg.measure.metrics import boundary_mae, dice
    from skinseg.models.registry import resolve_model
    from skinseg.segment.engine import segment

    entry = resolve_model("builtin")
    assert entry.path.stat().st_size < 10e6
    training = entry.info.training
    assert "phantoms only" in training["data"]["kind"] and training["started_from"] == "scratch"
    assert training["history"] and training["held_out_phantoms"]["default_look"]["postprocessed"]["dice"]
    ph = oct_phantom((1, 256, 256), seed=9101)  # a held-out seed
    labels = segment(ph.image, "builtin", pixel_size_um=ph.pixel_size_um, device="cpu").labels
    epidermis, truth = (labels >= 3) & (labels <= 5), (ph.labels >= 3) & (ph.labels <= 5)
    assert dice(epidermis, truth) > 0.85
    assert boundary_mae(surface_depth(labels), ph.surface_depth) < 1.5


def test_slices_flattened_to_the_surface(phantom):
    """A surface window flattens image and labels alike and is recorded for inference."""
    pair = [(phantom.image, phantom.labels)]
    window = {"above": 4, "rows": 32}
    with pytest.raises(SkinsegInputError, match="pixel size"):
        slices_from_pairs(pair, OCT_CLASSES, surface_window=window)
    flat = slices_from_pairs(pair, OCT_CLASSES, neighbours=1, surface_window=window,
                             pixel_size_um=phantom.pixel_size_um[-2:])
    assert flat.images[0].shape == (3, 32, 48) and flat.labels[0].shape == (32, 48)
    skin = OCT_CLASSES.value_of("stratum corneum")  # class index = value in the full table
    tops = np.array([np.argmax(lab >= skin, axis=0) for lab in flat.labels])
    assert np.median(np.abs(tops - window["above"])) <= 1  # the classical surface finds the skin
    shifts = surface_shifts(phantom.image, phantom.pixel_size_um[-2:], window["above"])
    np.testing.assert_array_equal(flat.labels[2], shift_columns(phantom.labels[2], shifts[2], 32))
    plain = slices_from_pairs(pair, OCT_CLASSES, neighbours=1)
    np.testing.assert_array_equal(flat.images[3][0], flat.images[2][1])  # neighbours shifted alike
    assert not np.array_equal(flat.images[0][1], plain.images[0][1][:32])
    info = new_model_info(flat, name="f", task="oct-layers", arguments=TINY_NET)
    assert info.input == {"neighbours": 1, "surface_window": window}
    again = slices_for_model(pair, info, pixel_size_um=phantom.pixel_size_um[-2:])
    np.testing.assert_array_equal(again.labels[5], flat.labels[5])
    assert flat.subset([1]).surface_window == window


def test_batches_come_in_order_from_the_prefetch_thread_and_errors_reach_the_trainer():
    def batches():
        yield "first"
        yield "second"
        raise SkinsegInputError("training slice 3 cannot be read")

    made = _prefetched(batches())
    assert [next(made), next(made)] == ["first", "second"]
    with pytest.raises(SkinsegInputError, match="slice 3"):
        next(made)


def _losses(tr, va, out, info, config, messages=None):
    report = None if messages is None else lambda done, total, message: messages.append(message)
    result = run(train(tr, va, out, start=info, config=config), report)
    return [r.train_loss for r in result.history], result


def test_compiled_steps_train_the_same_network(sets, info, tmp_path):
    _, tr, va = sets
    config = replace(CONFIG, epochs=2)
    eager, _ = _losses(tr, va, tmp_path / "eager.safetensors", info, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        messages = []
        compiled, result = _losses(tr, va, tmp_path / "compiled.safetensors", info, replace(config, compile=True),
                                   messages)
    if any("torch.compile failed" in str(w.message) for w in caught):
        pytest.skip("torch.compile cannot build kernels here (no C++ compiler?); the fallback has its own test")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    assert messages[0].startswith("compiling the network")  # the wait is announced
    np.testing.assert_allclose(compiled, eager, rtol=1e-4)  # fused kernels round differently, no more
    saved = _weights(tmp_path / "compiled.safetensors")  # the plain network is saved, not the wrapper
    assert set(saved) == set(_weights(tmp_path / "eager.safetensors"))
    assert result.history[-1].val_loss == pytest.approx(read_model_info(tmp_path / "compiled.safetensors")
                                                        .training["history"][-1]["val_loss"])


def test_a_failed_compile_warns_and_trains_uncompiled(sets, info, tmp_path, monkeypatch):
    _, tr, va = sets
    real_compile = torch.compile

    def no_compiler(graph, example_inputs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda net: real_compile(net, backend=no_compiler))
    config = replace(CONFIG, epochs=2)
    with pytest.warns(UserWarning, match="torch.compile failed .*No working C\\+\\+ compiler.*uncompiled"):
        fallback, _ = _losses(tr, va, tmp_path / "fallback.safetensors", info, replace(config, compile=True))
    eager, _ = _losses(tr, va, tmp_path / "eager.safetensors", info, config)
    assert fallback == eager  # from the first batch on, exactly the uncompiled training
