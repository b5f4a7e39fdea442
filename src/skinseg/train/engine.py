"""The training loop: fine-tune or train from scratch, with live per-epoch reports.

:func:`train` is a progress generator (:mod:`skinseg.progress`). It yields one
:class:`TrainStep` per batch and one at the end of each epoch; a step is the usual
``(done, total, message)`` tuple, and the epoch-end step also carries the epoch's
:class:`EpochReport` as ``step.report`` (``None`` on batch steps), which a GUI can plot as
live curves. The generator returns a :class:`TrainResult`.

Each time the validation loss improves, the network is written atomically to ``output``
as a model file whose ``training`` field holds the history so far; after every epoch a
resume state (latest weights, AdamW moments, schedule, history: safetensors + JSON, no
pickle) is written beside it. Closing the generator (cancel) or an error keeps the best
file and the resume state; :func:`train` with ``resume=True`` continues from that state.
A run that ends by itself rewrites the best file with the full history and removes the
state. With ``config.weight_average`` an exponential moving average of the weights (and
batch-norm statistics) follows training: it is what is validated and saved, and it is kept
beside the state (``*.average.safetensors``) for resuming. With the same seed, data and
configuration, CPU training gives the same weights, and a resumed run the same weights as
an uninterrupted one: every epoch draws its randomness from ``(seed, epoch)`` alone.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write
from skinseg.models.files import ModelInfo, load_model, save_model
from skinseg.progress import ProgressGenerator
from skinseg.segment._device import select_device
from skinseg.train.augment import Augmentation, augment, oct_augmentation, rgb_augmentation
from skinseg.train.checkpoint import load_state, save_state, state_path
from skinseg.train.config import EpochReport, TrainConfig, TrainResult, TrainStep
from skinseg.train.dataset import SliceSet
from skinseg.train.losses import frequency_class_weights, seed_class_weights, segmentation_loss

DEFAULT_UNET: dict[str, Any] = {
    "spatial_dims": 2, "channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 2,
}
"""Arguments of the default network (MONAI ``UNet`` with residual units), channels aside."""

_PAD_TO = 32  # validation slices are padded to a multiple of this (any U-Net depth here)


def new_model_info(
    slices: SliceSet,
    *,
    name: str,
    task: str,
    architecture: str = "monai.UNet",
    arguments: dict[str, Any] | None = None,
    pixel_size_um: tuple[float, ...] | None = None,
    tile: tuple[int, int] | None = None,
) -> ModelInfo:
    """Description of a new network fitting ``slices``: its channels, classes and normalisation.

    ``architecture`` and ``arguments`` default to :data:`DEFAULT_UNET`; channels in and
    out are set from the slices. ``tile`` None lets inference run whole B-scans.
    """
    args = dict(DEFAULT_UNET if arguments is None else arguments)
    args.update({"in_channels": slices.in_channels, "out_channels": len(slices.class_table.classes)})
    return ModelInfo(
        name=name, task=task, architecture=architecture, arguments=args,
        in_channels=slices.in_channels, class_table=slices.class_table,
        normalisation=dict(slices.normalisation), pixel_size_um=pixel_size_um, tile=tile,
        input=_input_record(slices),
    )


def _input_record(slices: SliceSet) -> dict[str, Any]:
    """How the slices were made from raw images, for inference to repeat."""
    record: dict[str, Any] = {"neighbours": slices.neighbours} if slices.neighbours else {}
    window = getattr(slices, "surface_window", None)  # InMemorySlices; other sets: none
    return record | ({"surface_window": dict(window)} if window else {})


@dataclass(frozen=True)
class _Hardware:
    """Where and how the network runs."""

    device: torch.device
    amp: bool  # float16 autocast and gradient scaling: CUDA only
    memory: torch.memory_format  # channels-last: 1.3× faster convolutions on CPUs (oneDNN) and GPUs

    @classmethod
    def of(cls, config: TrainConfig) -> _Hardware:
        device = select_device(config.device)
        fast = device.type in ("cpu", "cuda")
        return cls(device, config.amp and device.type == "cuda",
                   torch.channels_last if fast else torch.contiguous_format)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)


def _same_classes(a: ClassTable, b: ClassTable) -> bool:
    return [(c.value, c.name) for c in a.classes] == [(c.value, c.name) for c in b.classes]


def _check_fit(info: ModelInfo, slices: SliceSet, what: str) -> None:
    if len(slices) == 0:
        raise SkinsegInputError(f"the {what} set is empty: add annotated slices.")
    if not _same_classes(info.class_table, slices.class_table):
        raise SkinsegInputError(
            f"{what} labels use class table {slices.class_table.names}, but model {info.name!r} "
            f"predicts {info.class_table.names}; train from scratch or relabel."
        )
    if slices.in_channels != info.in_channels or slices.normalisation != info.normalisation:
        raise SkinsegInputError(
            f"{what} slices have {slices.in_channels} channel(s) normalised by {slices.normalisation}, "
            f"model {info.name!r} expects {info.in_channels} normalised by {info.normalisation}; "
            "build the slices with the model's settings (slices_for_model(pairs, info))."
        )


def _class_weights(config: TrainConfig, slices: SliceSet) -> np.ndarray | None:
    if config.class_weights == "seed":
        return seed_class_weights(slices.class_table)
    if config.class_weights == "frequency":
        return frequency_class_weights(slices.class_counts())
    if config.class_weights is None:
        return None
    weights = np.asarray(config.class_weights, dtype=np.float32)
    if weights.shape != (len(slices.class_table.classes),):
        raise ValueError(f"{weights.size} class weights for {len(slices.class_table.classes)} classes")
    return weights


def _focus(rng: np.random.Generator, labels: np.ndarray, fraction: float) -> tuple[int, int] | None:
    """With probability ``fraction``, a random pixel of a random non-background class."""
    if rng.random() >= fraction:
        return None
    classes = np.unique(labels)
    classes = classes[classes != 0]
    if classes.size == 0:
        return None
    where = np.flatnonzero(labels.ravel() == rng.choice(classes))
    return divmod(int(rng.choice(where)), labels.shape[1])


_Batch = tuple[torch.Tensor, torch.Tensor]


def _batch(slices: SliceSet, idx: np.ndarray, rng: np.random.Generator, aug: Augmentation,
           config: TrainConfig, hw: _Hardware) -> _Batch:
    """Augmented patches ``(batch, channels, rows, cols)`` and labels ``(batch, 1, rows, cols)``."""
    pairs = []
    for i in idx:
        image, labels = slices.sample(int(i))
        pairs.append(augment(image, labels, rng, aug, config.patch, _focus(rng, labels, config.class_crops)))
    x = torch.from_numpy(np.stack([p[0] for p in pairs])).to(hw.device, memory_format=hw.memory)
    y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))[:, None]
    return x, y.to(hw.device)


@torch.no_grad()
def _validate(net, slices: SliceSet, loss_fn, hw: _Hardware) -> tuple[float, dict[str, float]]:
    """Mean loss over whole validation slices and Dice per class (pooled over all pixels)."""
    net.eval()
    n_classes = len(slices.class_table.classes)
    inter, total = np.zeros(n_classes), np.zeros(n_classes)
    losses = []
    for i in range(len(slices)):
        image, labels = slices.sample(i)
        h, w = labels.shape
        pad = (0, -w % _PAD_TO, 0, -h % _PAD_TO)
        x = torch.nn.functional.pad(torch.from_numpy(image)[None], pad, mode="replicate")
        x = x.to(hw.device, memory_format=hw.memory)
        y = torch.from_numpy(labels.astype(np.int64))[None, None].to(hw.device)
        with hw.autocast():
            logits = net(x)[..., :h, :w].float()
        losses.append(float(loss_fn(logits, y)))
        pred = logits.argmax(1).cpu().numpy().ravel()
        truth = labels.ravel()
        total += np.bincount(pred, minlength=n_classes) + np.bincount(truth, minlength=n_classes)
        inter += np.bincount(truth[pred == truth], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2 * inter / total, np.nan)
    return float(np.mean(losses)), dict(zip(slices.class_table.names, dice.tolist()))


def _scheduler(opt, config: TrainConfig):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, config.patience // 3))


def _summary(
    progress: dict[str, Any], data: dict[str, Any], config: TrainConfig, stopped: str
) -> dict[str, Any]:
    history = progress["history"]
    best = next((h for h in history if h["epoch"] == progress["best_epoch"]), None)
    return {
        "data": data, "started_from": progress["started_from"], "config": config.to_dict(),
        "stopped": stopped, "epochs_run": len(history), "best_epoch": progress["best_epoch"],
        "best_val_loss": best and best["val_loss"], "best_val_dice": best and best["val_dice"],
        "seconds": round(sum(h["seconds"] for h in history), 1), "history": history,
    }


def _fresh_progress(started_from: Any) -> dict[str, Any]:
    return {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0,
            "history": [], "started_from": started_from}


def _setup(start, resume: bool, output: Path, device, seed: int):
    """(info, network, progress, saved optimizer/schedule/scaler states or None, best weights or None)."""
    if resume:
        info, weights, saved, progress = load_state(state_path(output), device)
        net = info.build()
        net.load_state_dict(weights)
        return info, net, progress, saved, load_model(output)[0].state_dict()
    if isinstance(start, ModelInfo):
        torch.manual_seed(seed)
        return start, start.build(), _fresh_progress("scratch"), None, None
    if start is None:
        raise ValueError("give start (a model file or a ModelInfo), or resume=True")
    net, info = load_model(start)
    started_from = {"name": info.name, "file": Path(start).name}
    # the start's name would tell users the result is the start model (e.g. "built-in")
    info = replace(info, name=f"{output.stem} (fine-tuned from {info.name})")
    return info, net, _fresh_progress(started_from), None, None


def _average_path(output: Path) -> Path:
    """The moving average of the weights beside a model file, for resuming."""
    return output.with_suffix(".average.safetensors")


def _averaged(net: torch.nn.Module, decay: float, output: Path, resume: bool) -> AveragedModel | None:
    """Exponential moving average of ``net`` (None when ``decay`` is 0), resumed from disk."""
    if not decay:
        return None
    average = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    if resume:
        try:
            device = str(next(net.parameters()).device)
            average.load_state_dict(load_file(str(_average_path(output)), device=device))
        except Exception as e:  # noqa: BLE001 - missing or damaged: the same to the user
            raise SkinsegInputError(
                f"{_average_path(output)}: weight average missing or damaged ({e}); start a new training."
            ) from e
    return average


def _save_average(average: AveragedModel, output: Path) -> None:
    """Write the moving average atomically beside the model file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in average.state_dict().items()}
    with atomic_write(_average_path(output), "wb") as fh:
        fh.write(save(tensors))


def _prefetched(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """``batches`` in order, the next one made in a background thread while the caller
    trains on the current one (augmentation runs in NumPy/SciPy, which release the GIL).
    One thread, in order: the random draws, and so training, stay reproducible."""
    with ThreadPoolExecutor(1, thread_name_prefix="skinseg-batches") as pool:
        ahead = pool.submit(next, batches, None)
        while (batch := ahead.result()) is not None:
            ahead = pool.submit(next, batches, None)
            yield batch


def _compiled(net: torch.nn.Module, config: TrainConfig, hw: _Hardware) -> torch.nn.Module:
    """``net`` compiled for the training steps when ``config.compile`` (sharing its
    weights: the saved and validated network is ``net``), else ``net`` itself."""
    return torch.compile(net) if config.compile and hw.device.type in ("cpu", "cuda") else net


def _step(parts, net, loss_fn, x: torch.Tensor, y: torch.Tensor, hw: _Hardware) -> torch.Tensor:
    """Loss and gradients of one batch through ``parts["step"]`` (``net``, compiled or
    not); a compile failure (no C++ compiler, no Triton) warns once and goes on with ``net``."""
    parts["optimizer"].zero_grad(set_to_none=True)
    try:
        with hw.autocast():
            loss = loss_fn(parts["step"](x), y)
        parts["scaler"].scale(loss).backward()
    except torch._dynamo.exc.TorchDynamoException as e:
        if parts["step"] is net:
            raise
        cause = getattr(e, "inner_exception", None) or e  # e.g. InvalidCxxCompiler: no working C++ compiler
        why = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
        warnings.warn(f"torch.compile failed ({why}); training goes on uncompiled.", stacklevel=2)
        parts["step"] = net
        return _step(parts, net, loss_fn, x, y, hw)
    return loss


def _epoch(net, parts, loss_fn, train_set: SliceSet, config: TrainConfig, aug, epoch: int, hw: _Hardware):
    """Train one epoch; yields the loss of each batch."""
    rng = np.random.default_rng([config.seed, epoch])
    torch.manual_seed(config.seed * 100_003 + epoch)
    steps = config.steps_per_epoch or math.ceil(len(train_set) / config.batch_size)
    b = config.batch_size
    repeats = -(-steps * b // len(train_set))
    order = np.concatenate([rng.permutation(len(train_set)) for _ in range(repeats)])
    opt, scaler = parts["optimizer"], parts["scaler"]
    net.train()
    for x, y in _prefetched(_batch(train_set, order[s * b:(s + 1) * b], rng, aug, config, hw)
                            for s in range(steps)):
        loss = _step(parts, net, loss_fn, x, y, hw)
        scaler.step(opt)
        scaler.update()
        if parts["average"] is not None:
            parts["average"].update_parameters(net)
        yield float(loss.detach())


def train(
    train_set: SliceSet,
    val_set: SliceSet,
    output: str | Path,
    *,
    start: ModelInfo | str | Path | None = None,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    data: dict[str, Any] | None = None,
) -> ProgressGenerator[TrainResult]:
    """Train a segmentation network; yields :class:`TrainStep`, returns :class:`TrainResult`.

    Parameters
    ----------
    train_set, val_set
        Training and validation slices (:mod:`skinseg.train.dataset`), made with the
        model's class table, channels and normalisation.
    output
        Model file (``.safetensors``) that receives the best network.
    start
        A model file to fine-tune, or a :class:`ModelInfo` (:func:`new_model_info`) to
        train from scratch. Ignored when resuming.
    config
        :class:`TrainConfig`. On resume, pass the same one (``epochs`` may grow).
    resume
        Continue from the state beside ``output`` (:func:`state_path`).
    data
        What the sets hold (sources, shapes, seeds...), kept in the model file.

    Raises
    ------
    SkinsegInputError
        On empty sets, classes or channels that do not fit the model, or a missing or
        damaged resume state.
    """
    output, hw = Path(output), _Hardware.of(config)
    info, net, progress, saved, best_weights = _setup(start, resume, output, hw.device, config.seed)
    _check_fit(info, train_set, "training")
    _check_fit(info, val_set, "validation")
    net.to(hw.device, memory_format=hw.memory)
    weights = _class_weights(config, train_set)
    loss_fn = segmentation_loss(weights, lambda_dice=config.lambda_dice, lambda_ce=config.lambda_ce,
                                present_only=config.dice_present_only)
    loss_fn.to(hw.device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    parts = {"optimizer": opt, "scheduler": _scheduler(opt, config),
             "scaler": torch.amp.GradScaler("cuda", enabled=hw.amp)}
    for name, state in (saved or {}).items():
        parts[name].load_state_dict(state)
    parts["average"] = _averaged(net, config.weight_average, output, resume)
    parts["step"] = _compiled(net, config, hw)
    model = net if parts["average"] is None else parts["average"].module  # validated and saved
    aug = config.augmentation or (rgb_augmentation() if train_set.modality == "rgb" else oct_augmentation())
    steps = config.steps_per_epoch or math.ceil(len(train_set) / config.batch_size)
    total, data, stopped = config.epochs * (steps + 1), dict(data or {}), "interrupted"
    if parts["step"] is not net:  # the first batch waits for the compiler
        yield TrainStep(progress["epoch"] * (steps + 1), total, "compiling the network (once, up to a minute or two)")
    try:
        for epoch in range(progress["epoch"] + 1, config.epochs + 1):
            started = time.perf_counter()
            losses = []
            for loss in _epoch(net, parts, loss_fn, train_set, config, aug, epoch, hw):
                losses.append(loss)
                done = (epoch - 1) * (steps + 1) + len(losses)
                message = f"epoch {epoch}/{config.epochs}, batch {len(losses)}/{steps}, loss {loss:.4f}"
                yield TrainStep(done, total, message)
            train_loss = float(np.mean(losses))
            val_loss, dice = _validate(model, val_set, loss_fn, hw)
            rate = opt.param_groups[0]["lr"]
            if config.schedule == "plateau":
                parts["scheduler"].step(val_loss)
            else:
                parts["scheduler"].step()
            improved = val_loss < progress["best_val_loss"] - config.min_delta
            seconds = time.perf_counter() - started
            report = EpochReport(epoch, train_loss, val_loss, dice, rate, seconds, improved)
            progress["history"].append(report.to_dict())
            progress["epoch"] = epoch
            if improved:
                progress.update(best_val_loss=val_loss, best_epoch=epoch, bad_epochs=0)
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                save_model(output, model, replace(info, training=_summary(progress, data, config, "running")))
            else:
                progress["bad_epochs"] += 1
            save_state(state_path(output), net, parts, info, progress)
            if parts["average"] is not None:
                _save_average(parts["average"], output)
            message = f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}"
            yield TrainStep(done + 1, total, message, report)
            if progress["bad_epochs"] >= config.patience:
                stopped = "early stopping"
                break
        else:
            stopped = "epochs"
    finally:  # also on cancel (generator closed) and errors: the best file gets the history so far
        if best_weights is not None:
            best_info = replace(info, training=_summary(progress, data, config, stopped))
            best = info.build()
            best.load_state_dict(best_weights)
            save_model(output, best, best_info)
    if best_weights is None:
        raise RuntimeError("training diverged: no finite validation loss; lower the learning rate.")
    state_path(output).unlink(missing_ok=True)
    _average_path(output).unlink(missing_ok=True)
    history = [EpochReport.from_dict(h) for h in progress["history"]]
    return TrainResult(output, best_info, best.eval(), history, progress["best_epoch"], stopped)
