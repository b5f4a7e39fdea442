"""Deep-learning OCT skin-layer segmentation of a B-scan or tomogram, streamed.

A model (built-in, a user model, or a ``.safetensors`` file; :mod:`skinseg.models.registry`)
runs over a tomogram ``(n_bscans, depth, width)`` a batch of B-scans at a time:

* the input may be lazy (dask, zarr, memory map): only one batch of B-scans (plus
  neighbours, for models that take them as channels) is read and converted to float at a
  time, and the uint8 labels are written batch by batch, so memory stays near one batch
  plus the output;
* a B-scan that fits the model's tile runs whole (padded to the network's size
  divisibility); larger ones are tiled with overlap blending
  (:func:`monai.inferers.sliding_window_inference`, Gaussian weights);
* device ``auto`` picks CUDA, then Apple MPS, then CPU; mixed precision on a GPU; when
  the GPU runs out of memory the batch is halved and retried;
* anatomical post-processing (:mod:`skinseg.segment.postprocess`) is on by default;
* optional outputs: class probabilities and an uncertainty map (softmax entropy).

B-scans whose pixels all have one value hold no tissue to find: they are labelled air
(probability 1, uncertainty 0) without running the network; a constant image is all air,
with a warning.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from skinseg import progress
from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.models.files import ModelInfo, load_model
from skinseg.models.registry import ModelEntry, resolve_model
from skinseg.segment._device import autocast, cpu_threads, is_out_of_memory, release_memory, select_device
from skinseg.segment.normalise import intensity_range, neighbour_indices, normalise, per_bscan
from skinseg.segment.postprocess import PostprocessParams, postprocess_probabilities

__all__ = ["SegmentationResult", "iter_segment", "segment"]

Model = str | ModelEntry | tuple[torch.nn.Module, ModelInfo]
_OVERLAP = 0.25
_SIZE_DIVISOR = {"monai.BasicUNet": 16, "monai.FlexibleUNet": 32}
_PIXEL_SIZE_TOLERANCE = 1.25
_TASK = "oct-layers"


@dataclass(frozen=True)
class SegmentationResult:
    """Output of :func:`segment`.

    Attributes
    ----------
    labels
        uint8 labels of the image's shape in :data:`skinseg.classes.OCT_CLASSES`.
    probabilities
        float16 ``(n_classes, *image.shape)`` softmax output (before post-processing),
        channel ``i`` = the model's class ``i``; None unless asked for.
    uncertainty
        float16 softmax entropy per pixel in units of ``log(n_classes)``: 0 = certain,
        1 = every class equally likely; None unless asked for.
    device
        The device used (``"cpu"``, ``"cuda"``, ``"mps"``).
    batch_size
        B-scans per network call at the end (smaller than asked after out-of-memory).
    pixel_size_um
        µm per pixel of each spatial axis, as used.
    model
        Name of the model (or ``"classical"``).
    messages
        What the user should know: assumptions made, batch reductions, skipped B-scans.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    uncertainty: np.ndarray | None
    device: str
    batch_size: int
    pixel_size_um: tuple[float, ...]
    model: str
    messages: tuple[str, ...] = ()


def segment(image: Any, model: Model = "builtin", **kwargs: Any) -> SegmentationResult:
    """Segment an OCT B-scan or tomogram into skin layers; see :func:`iter_segment`."""
    return progress.run(iter_segment(image, model, **kwargs))


def iter_segment(
    image: Any,
    model: Model = "builtin",
    *,
    pixel_size_um: float | tuple[float, ...] | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 8,
    postprocess: bool | PostprocessParams = True,
    probabilities: bool = False,
    uncertainty: bool = False,
) -> Generator[progress.Step, None, SegmentationResult]:
    """Segment an OCT B-scan or tomogram, yielding progress.

    Parameters
    ----------
    image
        ``(depth, width)`` B-scan or ``(n_bscans, depth, width)`` tomogram: numpy, memory
        map, dask or zarr (read a batch at a time), or an :class:`ImageData`.
    model
        ``"builtin"``, ``"classical"``, a model name or ``.safetensors`` path
        (:func:`skinseg.models.registry.resolve_model`), a :class:`ModelEntry`, or a
        ``(network, ModelInfo)`` pair.
    pixel_size_um
        µm per pixel, one number or one per spatial axis. Default: the
        :class:`ImageData`'s, else the size the model was trained at.
    device
        ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    batch_size
        B-scans per network call; halved on out-of-memory.
    postprocess
        Anatomical post-processing (:mod:`skinseg.segment.postprocess`): True, False, or
        :class:`PostprocessParams`.
    probabilities, uncertainty
        Also return the class probabilities / the entropy map (float16).

    Yields
    ------
    ``(done, total, message)``: ``done`` of ``total`` B-scans finished, first ``(0, total, ...)``.
    Closing the generator stops after the current batch.

    Returns
    -------
    SegmentationResult (``StopIteration.value``; :func:`segment` returns it directly).

    Raises
    ------
    SkinsegInputError
        RGB, 1-D or 4-D images, non-numeric data, NaN or infinite values; a model that is
        not for OCT layers, whose classes are not OCT classes, or whose input channels do
        not fit; an unknown device or batch size < 1.
    RuntimeError
        The device runs out of memory even for one B-scan.
    """
    if batch_size < 1:
        raise SkinsegInputError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(model, tuple):
        model = resolve_model(model, task=_TASK)
        if model.is_classical:
            return (yield from _classical(image, pixel_size_um, batch_size, probabilities or uncertainty))
    volume, squeeze, given_sizes, source = _prepare(image, pixel_size_um)
    dev = select_device(device)
    network, info, name = _load(model, dev)
    neighbours = _check_model(info, name, source)
    messages: list[str] = []
    sizes = _pixel_sizes(given_sizes, info, len(volume.shape) - squeeze, source, messages)
    params = postprocess if isinstance(postprocess, PostprocessParams) else None
    if postprocess is True:
        params = PostprocessParams()
    value_range = None if per_bscan(info.normalisation) else intensity_range(volume, info.normalisation)
    if value_range is not None and not np.all(np.isfinite(value_range)):
        raise SkinsegInputError(_NAN.format(source=source))
    n, depth, width = volume.shape
    values = np.array(info.class_table.values)
    labels = np.zeros((n, depth, width), np.uint8)
    probs = np.zeros((len(values), n, depth, width), np.float16) if probabilities else None
    entropy = np.zeros((n, depth, width), np.float16) if uncertainty else None
    tile, divisor = _tile(info), _size_divisor(info)
    constant = 0
    yield 0, n, f"{source}: {name} on {dev.type}, {n} B-scan(s)"
    with cpu_threads(dev):
        start = 0
        while start < n:
            stop = min(start + batch_size, n)
            x, flat = _batch(volume, start, stop, neighbours, info.normalisation, value_range, source)
            try:
                log_p = _predict(network, x, tile, divisor, dev) if not flat.all() else None
            except RuntimeError as e:
                if not is_out_of_memory(e):
                    raise
                release_memory(dev)
                if batch_size == 1:
                    raise RuntimeError(
                        f"{source}: {dev.type} ran out of memory segmenting one {depth}×{width} "
                        "B-scan. Close other programs using the GPU, or choose device 'cpu'."
                    ) from e
                batch_size //= 2
                messages.append(f"{dev.type} ran out of memory: batch size lowered to {batch_size}.")
                continue
            if log_p is not None and log_p.shape[1] != len(values):
                raise SkinsegInputError(
                    f"model {name!r}: the network gives {log_p.shape[1]} output channels but its "
                    f"file lists {len(values)} classes; the model file is inconsistent."
                )
            constant += int(flat.sum())
            _store(log_p, flat, values, start, labels, probs, entropy, sizes[-2], params)
            start = stop
            yield stop, n, f"segmented B-scan {stop} of {n}"
    if constant:
        note = f"{source}: {constant} of {n} B-scan(s) are constant (one value): labelled air."
        messages.append(note)
        if constant == n:
            warnings.warn(note, stacklevel=2)
    if squeeze:
        labels, probs = labels[0], None if probs is None else probs[:, 0]
        entropy = None if entropy is None else entropy[0]
    return SegmentationResult(labels, probs, entropy, dev.type, batch_size, sizes, name, tuple(messages))


_NAN = "{source}: the image holds NaN or infinite values; replace them (e.g. by 0) before segmenting."


def _classical(image: Any, pixel_size_um: Any, batch_size: int, extras: bool) -> Generator:
    """The classical method behind the same interface (labels only)."""
    from skinseg.segment.classical import iter_segment_classical

    result = yield from iter_segment_classical(image, pixel_size_um=pixel_size_um, batch_size=batch_size)
    messages = ("the classical method gives no probabilities or uncertainty.",) if extras else ()
    return SegmentationResult(
        result.labels, None, None, "cpu", batch_size, result.pixel_size_um, "classical", messages
    )


def _prepare(image: Any, pixel_size_um: Any) -> tuple[Any, bool, Any, str]:
    """3-D volume, whether it was 2-D, the pixel size given (or None) and a name for messages."""
    source = "image"
    if isinstance(image, ImageData):
        source = image.source or source
        if image.rgb:
            raise SkinsegInputError(
                f"{source}: an RGB image cannot be segmented into OCT skin layers; open the "
                "grey-scale OCT B-scan or tomogram."
            )
        if pixel_size_um is None and image.pixel_size_known:
            pixel_size_um = image.pixel_size_um
        image = image.data
    if not hasattr(image, "shape"):
        image = np.asarray(image)
    shape = tuple(image.shape)
    if len(shape) == 3 and shape[-1] in (3, 4):
        raise SkinsegInputError(
            f"{source}: shape {shape} looks like an RGB(A) image; OCT layer models need a "
            "grey-scale B-scan (depth, width) or tomogram (n_bscans, depth, width)."
        )
    if len(shape) not in (2, 3) or 0 in shape:
        raise SkinsegInputError(
            f"{source}: shape {shape} is not a B-scan (depth, width) or a tomogram "
            "(n_bscans, depth, width); select a 2-D or 3-D grey-scale OCT image."
        )
    if np.dtype(image.dtype).kind not in "uif":
        raise SkinsegInputError(f"{source}: data type {image.dtype} is not a grey-scale intensity image.")
    return (image[None] if len(shape) == 2 else image), len(shape) == 2, pixel_size_um, source


def _pixel_sizes(given: Any, info: ModelInfo, ndim: int, source: str, messages: list[str]) -> tuple[float, ...]:
    """Pixel size per spatial axis: as given, else the model's training size, else 1 µm."""
    if given is None:
        trained = info.pixel_size_um
        if trained is None:
            warnings.warn(f"{source}: pixel size unknown; using 1.0 µm per pixel.", stacklevel=4)
            return (1.0,) * ndim
        axial, lateral = (float(s) for s in trained[-2:])
        messages.append(f"{source}: pixel size unknown; assumed the model's {axial} × {lateral} µm.")
        return (axial, lateral) if ndim == 2 else (lateral, axial, lateral)  # B-scan spacing: a guess
    sizes = np.broadcast_to(np.asarray(given, float), (ndim,)) if np.ndim(given) == 0 else np.asarray(given, float)
    if sizes.shape != (ndim,) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise SkinsegInputError(
            f"{source}: pixel_size_um must be one positive number or {ndim} (one per axis), got {given!r}"
        )
    sizes = tuple(float(s) for s in sizes)
    trained = info.pixel_size_um
    if trained is not None:
        trained = tuple(float(s) for s in trained[-2:])
        ratio = np.asarray(sizes[-2:]) / np.asarray(trained)
        if np.any(np.maximum(ratio, 1 / ratio) > _PIXEL_SIZE_TOLERANCE):
            messages.append(
                f"{source}: pixels of {sizes[-2:]} µm (depth, width), the model was trained "
                f"at {trained} µm; resample the image if the layers look wrong."
            )
    return sizes


def _load(model: ModelEntry | tuple[torch.nn.Module, ModelInfo], dev: torch.device) -> tuple[torch.nn.Module, ModelInfo, str]:
    """The network on ``dev`` for inference (a copy when the caller gave one), its header, a name."""
    if isinstance(model, tuple):
        network, info = copy.deepcopy(model[0]), model[1]
        name = info.name
    else:
        (network, info), name = load_model(model.path), model.name
    return network.to(dev, memory_format=_memory_format(dev)).eval(), info, name


def _memory_format(dev: torch.device) -> torch.memory_format:
    """Channels-last convolutions run 1.3–1.8× faster on CPUs (oneDNN) and tensor-core GPUs."""
    return torch.channels_last if dev.type in ("cpu", "cuda") else torch.contiguous_format


def _check_model(info: ModelInfo, name: str, source: str) -> int:
    """Check the model suits OCT layers; return its neighbours per side."""
    if info.task != _TASK:
        raise SkinsegInputError(f"model {name!r} is for '{info.task}', not OCT layers; choose an OCT layer model.")
    oct_classes = set(OCT_CLASSES.classes)
    if not set(info.class_table.classes) <= oct_classes or 0 not in info.class_table.values:
        raise SkinsegInputError(
            f"model {name!r} predicts the classes {info.class_table.names} of table "
            f"'{info.class_table.name}', not the OCT layer classes {OCT_CLASSES.names}; "
            "choose a model trained on OCT layer labels."
        )
    neighbours = int(info.input.get("neighbours", 0))
    if info.in_channels != 2 * neighbours + 1:
        raise SkinsegInputError(
            f"model {name!r} takes {info.in_channels} input channels, but a grey OCT B-scan "
            f"with {neighbours} neighbour(s) per side gives {2 * neighbours + 1} (is it a "
            f"model for RGB images?); it cannot segment {source}."
        )
    return neighbours


def _size_divisor(info: ModelInfo) -> int:
    """Image sizes the network accepts are multiples of this."""
    if "size_divisor" in info.input:
        return int(info.input["size_divisor"])
    if "strides" in info.arguments:
        return math.prod(int(s) for s in info.arguments["strides"])
    return _SIZE_DIVISOR.get(info.architecture, 32)


def _tile(info: ModelInfo) -> tuple[int, int] | None:
    """The model's tile, rounded down to the size divisor; None: run B-scans whole."""
    if info.tile is None:
        return None
    d = _size_divisor(info)
    return tuple(max(d, int(t) // d * d) for t in info.tile)


def _batch(
    volume: Any, start: int, stop: int, neighbours: int, spec: dict, value_range: Any, source: str
) -> tuple[torch.Tensor, np.ndarray]:
    """Network input ``(n, channels, depth, width)`` for B-scans ``start:stop`` and which are constant."""
    index = neighbour_indices(np.arange(start, stop), volume.shape[0], neighbours)
    first, last = int(index.min()), int(index.max()) + 1
    raw = np.asarray(volume[first:last])
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise SkinsegInputError(_NAN.format(source=source) + f" (B-scans {first}–{last - 1})")
    centre = raw[start - first : stop - first]
    flat = centre.min(axis=(1, 2)) == centre.max(axis=(1, 2))
    x = normalise(raw, spec, value_range)[index - first]
    return torch.from_numpy(x), flat


def _predict(
    network: torch.nn.Module, x: torch.Tensor, tile: tuple[int, int] | None, divisor: int, dev: torch.device
) -> torch.Tensor:
    """Log-probabilities ``(n, classes, depth, width)`` float32 on the CPU."""
    depth, width = x.shape[-2:]
    x = x.to(dev, memory_format=_memory_format(dev))
    with torch.inference_mode(), autocast(dev):
        if tile is None or (depth <= tile[0] and width <= tile[1]):
            pad = ((-width) % divisor, (-depth) % divisor)
            padded = F.pad(x, (0, pad[0], 0, pad[1]), mode="replicate") if any(pad) else x
            logits = network(padded)[..., :depth, :width]
        else:
            logits = sliding_window_inference(
                x, tile, x.shape[0], network, overlap=_OVERLAP, mode="gaussian", padding_mode="replicate"
            )
        return torch.log_softmax(logits.float(), dim=1).cpu().contiguous()


def _store(
    log_p: torch.Tensor | None,
    flat: np.ndarray,
    values: np.ndarray,
    start: int,
    labels: np.ndarray,
    probs: np.ndarray | None,
    entropy: np.ndarray | None,
    axial_um: float,
    params: PostprocessParams | None,
) -> None:
    """Write one batch of results into the outputs (constant B-scans: air, certain)."""
    stop = start + len(flat)
    if log_p is not None:
        lp = log_p.numpy()
        if params is not None:
            labels[start:stop] = postprocess_probabilities(
                lp.transpose(1, 0, 2, 3), axial_um=axial_um, values=values, params=params, log=True
            )
        else:
            labels[start:stop] = values[lp.argmax(axis=1)]
        if probs is not None or entropy is not None:
            p = log_p.exp()
            if probs is not None:
                probs[:, start:stop] = p.numpy().transpose(1, 0, 2, 3)
            if entropy is not None:
                h = -(p * log_p).sum(dim=1) / math.log(len(values))
                entropy[start:stop] = h.clamp_(0.0, 1.0).numpy()
    if flat.any():
        where = start + np.flatnonzero(flat)
        labels[where] = 0
        if probs is not None:
            probs[:, where] = 0
            probs[int(np.flatnonzero(values == 0)[0]), where] = 1
        if entropy is not None:
            entropy[where] = 0
