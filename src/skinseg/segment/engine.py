"""Deep-learning OCT skin-layer segmentation of a B-scan or tomogram, streamed.

A model (:mod:`skinseg.models.registry`) runs over a tomogram ``(n_bscans, depth, width)``
a batch of B-scans at a time. A lazy input (dask, zarr, memory map) is read one batch (plus
neighbours, for models that take them as channels) at a time and the uint8 labels are
written batch by batch, so memory stays near two batches plus the output. B-scans that fit
the model's tile run whole, larger ones in tiles with Gaussian overlap blending (MONAI);
devices, precision, CPU call sizes and out-of-memory retries are in
:mod:`skinseg.segment._device`. Anatomical post-processing
(:mod:`skinseg.segment.postprocess`, on by default) runs on the logits in a second thread,
one batch behind the network. Optional outputs: class probabilities and the softmax
entropy. B-scans whose pixels all have one value hold no tissue: they are labelled air
(probability 1, uncertainty 0) without running the network; a constant image is all air,
with a warning. Documentation: docs/segment.md.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
import math
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinseg import progress
from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import pixel_sizes_differ
from skinseg.models.files import ModelInfo, load_model
from skinseg.models.registry import ModelEntry, resolve_model
from skinseg.segment._device import (
    cpu_threads,
    for_inference,
    inference_tile,
    is_out_of_memory,
    logits,
    postprocess_threads,
    release_memory,
    select_device,
    size_divisor,
)
from skinseg.segment._input import checked_pixel_sizes, oct_volume
from skinseg.segment.normalise import (
    intensity_range,
    iter_surface_shifts,
    neighbour_indices,
    normalise,
    per_bscan,
    shift_columns,
)
from skinseg.segment.postprocess import PostprocessParams, postprocess_probabilities

__all__ = ["SegmentationResult", "iter_segment", "segment"]

Model = str | Path | ModelEntry | tuple[torch.nn.Module, ModelInfo]
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
        B-scans per step (read, network, post-processing, write) at the end: smaller than
        asked after out-of-memory. A GPU sees the whole batch per network call.
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
        ``(network, ModelInfo)`` pair (the network is copied, never changed).
    pixel_size_um
        µm per pixel, one number or one per spatial axis. Default: the
        :class:`ImageData`'s, else the size the model was trained at.
    device
        ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    batch_size
        B-scans per step and per network call on a GPU; halved on out-of-memory.
    postprocess
        Anatomical post-processing (:mod:`skinseg.segment.postprocess`): True, False, or
        :class:`PostprocessParams`.
    probabilities, uncertainty
        Also return the class probabilities / the entropy map (float16).

    Yields
    ------
    ``(done, total, message)``: ``done`` of ``total`` B-scans finished, first
    ``(0, total, ...)``; for a model with a surface window ``total`` is twice the
    B-scans: the classical surface of each, then the network. Closing the generator
    stops after the current batch (and its post-processing).

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
            extras = probabilities or uncertainty
            return (yield from _classical(image, pixel_size_um, batch_size, extras))
    volume, squeeze, given_sizes, source = oct_volume(image, pixel_size_um)
    dev = select_device(device)
    network, info, name = _load(model, dev)
    neighbours = _check_model(info, name, source)
    messages: list[str] = []
    sizes = _pixel_sizes(given_sizes, info, len(volume.shape) - squeeze, source, messages)
    spec = info.normalisation
    window = info.input.get("surface_window")  # flatten to the classical surface, as in training
    value_range = None if per_bscan(spec) else intensity_range(volume, spec)
    if value_range is not None and not np.all(np.isfinite(value_range)):
        raise SkinsegInputError(_NAN.format(source=source))
    params = PostprocessParams() if postprocess is True else postprocess or None
    out = _Outputs(volume.shape, info.class_table.values, probabilities, uncertainty)
    tile, divisor = inference_tile(info), size_divisor(info)
    n, depth, width = volume.shape
    # a surface-window model first needs the classical surface of every B-scan (steps 1…n)
    first, total = (n, 2 * n) if window else (0, n)
    yield 0, total, f"{source}: {name} on {dev.type}, {n} B-scan(s)"
    shifts = None
    if window:
        finding = iter_surface_shifts(volume, sizes[-2:], int(window["above"]))
        shifts = yield from progress.offset(finding, 0, total)
    # each batch is post-processed (numpy) in worker threads while the next one runs through
    # the network; at most one batch waits, so memory holds two batches' logits at most
    threads = postprocess_threads(dev)
    with cpu_threads(dev), ThreadPoolExecutor(max_workers=threads) as workers:
        start, pending = 0, []
        while start < n:
            stop = min(start + batch_size, n)
            x, flat = _batch(volume, start, stop, neighbours, spec, value_range, source, shifts, window)
            try:
                scores = None if flat.all() else logits(network, x, tile, divisor, dev)
                if scores is not None and shifts is not None:  # back from the surface window
                    scores = torch.from_numpy(shift_columns(scores.numpy(), -shifts[start:stop], depth))
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
                messages.append(f"{dev.type} ran out of memory: batch size now {batch_size}.")
                continue
            if scores is not None and scores.shape[1] != len(out.values):
                raise SkinsegInputError(
                    f"model {name!r}: the network gives {scores.shape[1]} output channels but "
                    f"its file lists {len(out.values)} classes; the model file is inconsistent."
                )
            for job in pending:
                job.result()
            pending = [
                workers.submit(out.store, start + a, None if scores is None else scores[a:b],
                               flat[a:b], sizes[-2], params)
                for a, b in _chunks(stop - start, threads)
            ]
            out.constant += int(flat.sum())
            start = stop
            yield first + stop, total, f"segmented B-scan {stop} of {n}"
        for job in pending:
            job.result()
    if out.constant:
        note = f"{source}: {out.constant} of {n} B-scan(s) are constant (one value): air."
        messages.append(note)
        if out.constant == n:
            warnings.warn(note, stacklevel=2)
    labels, probs, entropy = out.arrays(squeeze)
    return SegmentationResult(
        labels, probs, entropy, dev.type, batch_size, sizes, name, tuple(messages)
    )


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of up to ``parts`` near-equal consecutive pieces of ``range(n)``."""
    edges = np.linspace(0, n, min(n, parts) + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


_NAN = (
    "{source}: the image holds NaN or infinite values; replace them (e.g. by 0) before segmenting."
)


class _Outputs:
    """The result arrays, preallocated and filled batch by batch."""

    def __init__(
        self, shape: tuple[int, ...], values: list[int], probabilities: bool, uncertainty: bool
    ) -> None:
        self.values = np.array(values)
        self.labels = np.zeros(shape, np.uint8)
        self.probs = np.zeros((len(values), *shape), np.float16) if probabilities else None
        self.entropy = np.zeros(shape, np.float16) if uncertainty else None
        self.constant = 0

    def store(
        self, start: int, scores: torch.Tensor | None, flat: np.ndarray, axial_um: float,
        params: PostprocessParams | None,
    ) -> None:
        """Write one batch from the network's logits (constant B-scans: air, certain)."""
        stop = start + len(flat)
        if scores is not None:
            s = scores.numpy()
            if params is None:
                self.labels[start:stop] = self.values[s.argmax(axis=1)]
            else:  # per-pixel constants do not matter: logits serve as log-probabilities
                self.labels[start:stop] = postprocess_probabilities(
                    s.transpose(1, 0, 2, 3), axial_um=axial_um, values=self.values, params=params,
                    log=True,
                )
            if self.probs is not None or self.entropy is not None:
                log_p = torch.log_softmax(scores, dim=1)
                p = log_p.exp()
                if self.probs is not None:
                    self.probs[:, start:stop] = p.numpy().transpose(1, 0, 2, 3)
                if self.entropy is not None:
                    h = -(p * log_p).sum(dim=1) / math.log(len(self.values))
                    self.entropy[start:stop] = h.clamp_(0.0, 1.0).numpy()
        if flat.any():
            where = start + np.flatnonzero(flat)
            self.labels[where] = 0
            if self.probs is not None:
                self.probs[:, where] = 0
                self.probs[int(np.flatnonzero(self.values == 0)[0]), where] = 1
            if self.entropy is not None:
                self.entropy[where] = 0

    def arrays(self, squeeze: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Labels, probabilities, entropy; without the B-scan axis for a 2-D image."""
        if not squeeze:
            return self.labels, self.probs, self.entropy
        probs = None if self.probs is None else self.probs[:, 0]
        return self.labels[0], probs, None if self.entropy is None else self.entropy[0]


def _classical(image: Any, pixel_size_um: Any, batch_size: int, extras: bool) -> Generator:
    """The classical method behind the same interface (labels only)."""
    from skinseg.segment.classical import iter_segment_classical

    result = yield from iter_segment_classical(
        image, pixel_size_um=pixel_size_um, batch_size=batch_size
    )
    messages = ("the classical method gives no probabilities or uncertainty.",) if extras else ()
    return SegmentationResult(
        result.labels, None, None, "cpu", batch_size, result.pixel_size_um, "classical", messages
    )


def _pixel_sizes(
    given: Any, info: ModelInfo, ndim: int, source: str, messages: list[str]
) -> tuple[float, ...]:
    """Pixel size per spatial axis: as given, else the model's training size, else 1 µm."""
    trained = None
    if info.pixel_size_um is not None:
        trained = tuple(float(s) for s in info.pixel_size_um[-2:])
    if given is None:
        if trained is None:
            warnings.warn(f"{source}: pixel size unknown; using 1.0 µm per pixel.", stacklevel=4)
            return (1.0,) * ndim
        messages.append(f"{source}: pixel size unknown; assumed the model's {trained} µm.")
        return trained if ndim == 2 else (trained[1], *trained)  # B-scan spacing: a guess
    sizes = checked_pixel_sizes(given, ndim, source)
    if trained is not None:
        if pixel_sizes_differ(sizes[-2:], trained, _PIXEL_SIZE_TOLERANCE):
            messages.append(
                f"{source}: pixels of {sizes[-2:]} µm (depth, width), the model was trained "
                f"at {trained} µm; resample the image if the layers look wrong."
            )
    return sizes


def _load(
    model: ModelEntry | tuple[torch.nn.Module, ModelInfo], dev: torch.device
) -> tuple[torch.nn.Module, ModelInfo, str]:
    """The network ready on ``dev`` (a copy when the caller gave one), its header, a name."""
    if isinstance(model, tuple):
        (network, info), name = (copy.deepcopy(model[0]), model[1]), model[1].name
    else:
        (network, info), name = load_model(model.path), model.name
    return for_inference(network, dev), info, name


def _check_model(info: ModelInfo, name: str, source: str) -> int:
    """Check the model suits OCT layers; return its neighbours per side."""
    if info.task != _TASK:
        raise SkinsegInputError(
            f"model {name!r} is for '{info.task}', not OCT layers; choose an OCT layer model."
        )
    table = info.class_table
    if not set(table.classes) <= set(OCT_CLASSES.classes) or 0 not in table.values:
        raise SkinsegInputError(
            f"model {name!r} predicts the classes {table.names} of table '{table.name}', "
            f"not the OCT layer classes {OCT_CLASSES.names}; "
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


def _batch(
    volume: Any, start: int, stop: int, neighbours: int, spec: dict, value_range: Any, source: str,
    shifts: np.ndarray | None = None, window: dict[str, int] | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Network input ``(n, channels, depth, width)`` for B-scans ``start:stop``; constant ones.

    With ``shifts`` (:func:`surface_shifts` of the volume), each B-scan is flattened to its
    surface and cut to ``window["rows"]`` rows: ``(n, channels, rows, width)``.
    """
    index = neighbour_indices(np.arange(start, stop), volume.shape[0], neighbours)
    first, last = int(index.min()), int(index.max()) + 1
    raw = np.asarray(volume[first:last])
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise SkinsegInputError(_NAN.format(source=source) + f" (B-scans {first}–{last - 1})")
    centre = raw[start - first : stop - first]
    flat = centre.min(axis=(1, 2)) == centre.max(axis=(1, 2))
    x = normalise(raw, spec, value_range)[index - first]
    if shifts is not None and window is not None:
        x = np.ascontiguousarray(shift_columns(x, shifts[index], int(window["rows"])))
    return torch.from_numpy(x), flat
