"""Device choice, mixed precision, CPU threads and out-of-memory detection for inference."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from skinseg.errors import SkinsegInputError

DEVICES = ("auto", "cpu", "cuda", "mps")


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
        raise SkinsegInputError(f"device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N).")
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not _mps_available()):
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
