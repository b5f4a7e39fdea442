"""Running a network for inference: device, precision, threads, memory, whole or tiled passes."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo

DEVICES = ("auto", "cpu", "cuda", "mps")
OVERLAP = 0.25
CPU_PIXELS_PER_CALL = 2**18
"""Largest network input (pixels, over the batch) per call on a CPU. Bigger calls overflow
the caches: on this project's 2-core CPU one 512 x 512 B-scan per call ran 19 B-scans/s,
eight per call 8.7 B-scans/s (instance-norm UNet, 16-128 channels)."""
_SIZE_DIVISOR = {"monai.BasicUNet": 16, "monai.FlexibleUNet": 32}
_INSTANCE_NORMS = (torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``: ``"auto"`` picks CUDA, then Apple MPS, then CPU.

    Raises
    ------
    SkinsegInputError
        For an unknown name or a device this machine does not have.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise SkinsegInputError(
            f"device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N)."
        )
    available = torch.cuda.is_available() if kind == "cuda" else kind != "mps" or _mps_available()
    if not available:
        raise SkinsegInputError(
            f"device {device!r} is not available on this machine; choose 'auto' or 'cpu'."
        )
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision (float16) on a GPU; a no-op on the CPU."""
    if device.type in ("cuda", "mps") and torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_threads(device: torch.device) -> Iterator[None]:
    """Cap torch's CPU threads at the usable CPUs while inside; restored on exit."""
    before = torch.get_num_threads()
    wanted = min(before, usable_cpus()) if device.type == "cpu" else before
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)


def postprocess_threads(device: torch.device) -> int:
    """Threads that post-process batches beside the network.

    One on the CPU, where the network itself uses every core; on a GPU the CPU is free and
    post-processing is the slower part, so up to four (the numpy work holds the GIL part of
    the time: on a 16-core machine 2 threads ran it 1.5×, 4 threads 1.7×, 8 threads 2.0× as
    fast as one).
    """
    return 1 if device.type == "cpu" else max(1, min(4, usable_cpus() - 1))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def release_memory(device: torch.device) -> None:
    """Return cached blocks to the device after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def memory_format(device: torch.device, network: torch.nn.Module) -> torch.memory_format:
    """Channels-last where it pays: oneDNN's fast layout on CPUs, and tensor cores' on GPUs.

    Measured on this project's 2-core CPU, a batch-norm UNet ran 1.6-1.8x faster
    channels-last; an instance-norm UNet ran no faster and needed more memory, so networks
    with instance norm stay contiguous.
    """
    instance_norm = any(isinstance(m, _INSTANCE_NORMS) for m in network.modules())
    if device.type in ("cpu", "cuda") and not instance_norm:
        return torch.channels_last
    return torch.contiguous_format


def for_inference(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``network`` on ``device`` in eval mode and its fast memory layout."""
    return network.to(device, memory_format=memory_format(device, network)).eval()


def size_divisor(info: ModelInfo) -> int:
    """Image sizes the network accepts are multiples of this."""
    if "size_divisor" in info.input:
        return int(info.input["size_divisor"])
    if "strides" in info.arguments:
        return math.prod(int(s) for s in info.arguments["strides"])
    return _SIZE_DIVISOR.get(info.architecture, 32)


def inference_tile(info: ModelInfo) -> tuple[int, int] | None:
    """The model's tile, rounded down to the size divisor; None: run B-scans whole."""
    if info.tile is None:
        return None
    d = size_divisor(info)
    return tuple(max(d, int(t) // d * d) for t in info.tile)


def per_call(device: torch.device, pixels_each: int, n: int) -> int:
    """How many of ``n`` images (or tiles) of ``pixels_each`` pixels go into one network call.

    All of them on a GPU; on a CPU as many as fit :data:`CPU_PIXELS_PER_CALL` (at least one).
    """
    return n if device.type != "cpu" else max(1, min(n, CPU_PIXELS_PER_CALL // pixels_each))


def logits(
    network: torch.nn.Module,
    x: torch.Tensor,
    tile: tuple[int, int] | None,
    divisor: int,
    device: torch.device,
) -> torch.Tensor:
    """The network's class scores ``(n, classes, depth, width)``, float32 on the CPU.

    ``x`` ``(n, channels, depth, width)`` runs whole (padded at the bottom and right with
    edge values to multiples of ``divisor``) when it fits ``tile`` or ``tile`` is None,
    else in overlapping tiles blended with Gaussian weights; :func:`per_call` images or
    tiles per network call.
    """
    n, depth, width = x.shape[0], *x.shape[-2:]
    x = x.to(device, memory_format=memory_format(device, network))
    with torch.inference_mode(), autocast(device):
        if tile is not None and (depth > tile[0] or width > tile[1]):
            out = sliding_window_inference(
                x, tile, per_call(device, tile[0] * tile[1], n), network, overlap=OVERLAP,
                mode="gaussian", padding_mode="replicate",
            )
            return out.float().cpu().contiguous()
        pad = ((-width) % divisor, (-depth) % divisor)
        x = F.pad(x, (0, pad[0], 0, pad[1]), mode="replicate") if any(pad) else x
        step = per_call(device, x.shape[-2] * x.shape[-1], n)
        out = None
        for i in range(0, n, step):
            scores = network(x[i : i + step])[..., :depth, :width]
            if out is None:
                out = torch.empty((n, *scores.shape[1:]), dtype=torch.float32)
            out[i : i + step] = scores  # to the CPU, float32, plain layout
        return out
