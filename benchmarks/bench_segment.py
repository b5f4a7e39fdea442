"""Benchmark the deep OCT layer segmentation engine (issue 3, speed and memory).

Run: ``python benchmarks/bench_segment.py [--bscans 128] [--device cpu] [--model builtin]
[--quick] [--rss-memmap]``.

Prints, all measured in this one run:

1. B-scans per second of :func:`skinseg.segment.engine.segment` (post-processing on)
   over a ``(128, 512, 512)`` phantom with the built-in model;
2. pipeline time ÷ time spent inside the network's forward pass during that very run
   (same batches, same tiles; target <= 1.15);
3. the speed-up over a plain MONAI loop: each B-scan alone through
   ``sliding_window_inference`` with default overlap and the model's tile, else its
   training patch, then argmax (target >= 1.5); whole runs of both alternate twice and
   the best of each counts, so both see the same load on a shared machine;
4. when the model's tile is smaller than a B-scan (so B-scans are tiled): the same model
   run on whole B-scans, for comparison;
5. peak RSS (``VmHWM``) of a fresh subprocess that opens a ``(256, 512, 512)`` uint16 TIFF
   with :func:`skinseg.io.read_oct` and segments it (target <= file size + 1 GB); with
   ``--rss-memmap`` also opened as a memory map (``tifffile.memmap``), which streams;
6. forward-pass B-scans per second and size of candidate architectures (<= 10 MB), run
   as the engine runs them (:func:`skinseg.segment._device.logits`: batches of 8, CPU
   calls of at most 2**18 pixels, channels-last unless instance norm, inference mode);
7. on a GPU: the pipeline with its post-processing in one thread against the engine's
   default (:func:`skinseg.segment._device.postprocess_threads`), alternating, best of two.

Without a built-in model file (``src/skinseg/models/builtin/``) an untrained network of
the training script's architecture stands in, and the output says so: speed does not
depend on the weights (post-processing is slower on an untrained network's noise).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import tifffile
import torch
from monai.inferers import sliding_window_inference

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.models.files import ModelInfo, load_model, save_model
from skinseg.models.registry import resolve_model
from skinseg.segment import engine
from skinseg.segment._device import for_inference, logits, postprocess_threads, size_divisor
from skinseg.segment.engine import segment
from skinseg.segment.normalise import DEFAULT_NORMALISATION, intensity_range, normalise
from skinseg.synth.oct import oct_phantom

# what scripts/train_builtin_oct.py trains; used only when no built-in model exists yet
STAND_IN = {"spatial_dims": 2, "in_channels": 1, "out_channels": 7, "channels": [16, 32, 64, 128],
            "strides": [2, 2, 2], "num_res_units": 2}
CANDIDATES = {
    "UNet 16-128, 2 res units, instance norm (training script)": ("monai.UNet", STAND_IN),
    "UNet 16-128, 1 res unit, batch norm": (
        "monai.UNet", {**STAND_IN, "num_res_units": 1, "norm": "batch"}),
    "UNet 8-128 (5 levels), 1 res unit, batch norm": (
        "monai.UNet", {**STAND_IN, "channels": [8, 16, 32, 64, 128], "strides": [2, 2, 2, 2],
                       "num_res_units": 1, "norm": "batch"}),
    "BasicUNet 16,16,32,64,128,16": (
        "monai.BasicUNet", {"spatial_dims": 2, "in_channels": 1, "out_channels": 7,
                            "features": [16, 16, 32, 64, 128, 16]}),
}
PASS = {True: "PASS", False: "FAIL"}

RSS_CHILD = """
import json, resource, sys, time
import tifffile
from skinseg.io import read_oct
from skinseg.segment.engine import segment


def peak_kib():
    # VmHWM: this process image's peak RSS (ru_maxrss keeps the parent's across exec)
    try:
        with open("/proc/self/status") as fh:
            return int(next(l for l in fh if l.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


path, model, device, batch, how = sys.argv[1:6]
before = peak_kib()
sizes = (10.0, 2.385, 10.0)
image = read_oct(path, pixel_size_um=sizes).data if how == "read_oct" else tifffile.memmap(path)
t0 = time.perf_counter()
result = segment(image, model, pixel_size_um=sizes, device=device, batch_size=int(batch))
print(json.dumps({"kind": type(image).__name__, "seconds": time.perf_counter() - t0,
                  "imports_kib": before, "peak_kib": peak_kib(),
                  "labels": list(result.labels.shape)}))
"""


def model_file(spec: str, folder: Path) -> tuple[str, str]:
    """Model file for :func:`segment` and a description; writes a stand-in file if needed."""
    try:
        e = resolve_model(spec)
        return str(e.path), f"{e.origin} model {e.path.name} ({e.info.name}, tile {e.info.tile})"
    except SkinsegInputError:
        info = ModelInfo(
            name="untrained stand-in", task="oct-layers", architecture="monai.UNet",
            arguments=STAND_IN, in_channels=1, class_table=OCT_CLASSES,
            normalisation=dict(DEFAULT_NORMALISATION), pixel_size_um=(2.4, 10.0), tile=(256, 256),
        )
        torch.manual_seed(0)
        path = save_model(folder / "stand_in.safetensors", info.build(), info)
        return str(path), ("NO built-in model yet: untrained stand-in of the training script's "
                           "architecture, tile (256, 256)")


class ForwardTimer:
    """Forward hooks adding up the seconds spent inside a network (deep copies share them)."""

    def __init__(self, network: torch.nn.Module, device: str) -> None:
        self.seconds, self.calls, self._t0 = 0.0, 0, 0.0
        self._sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        network.register_forward_pre_hook(lambda *_: self._start())
        network.register_forward_hook(lambda *_: self._stop())

    def _start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def _stop(self) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1


class PlainLoop:
    """Each B-scan alone through sliding_window_inference (MONAI defaults), then argmax.

    The window is the model's tile, else the patch it was trained on (what a MONAI user
    would pass), else the whole B-scan.
    """

    def __init__(self, model: str, volume: np.ndarray, device: str) -> None:
        self.network, self.info = load_model(model, device)
        patch = self.info.training.get("config", {}).get("patch")
        self.roi = tuple(self.info.tile or patch or volume.shape[1:])
        self.range = intensity_range(volume, self.info.normalisation)
        self.device = device

    def __call__(self, bscans: np.ndarray) -> None:
        with torch.no_grad():
            for bscan in bscans:
                x = torch.from_numpy(normalise(bscan, self.info.normalisation, self.range))
                x = x[None, None].to(self.device)
                sliding_window_inference(x, self.roi, 1, self.network).argmax(1).cpu()


def side_by_side(
    volume: np.ndarray, runs: dict, plain: PlainLoop, timer: ForwardTimer, rounds: int = 2
) -> tuple[dict, float, float]:
    """Best seconds of each engine run (``name: (model, kwargs)``) and of the plain loop over
    the whole volume, all run in turn ``rounds`` times; and the forward seconds inside the
    best ``"pipeline"`` run.

    Whole runs, so each includes all the post-processing it starts (a run advanced batch by
    batch would leave its post-processing thread working on the next one's time);
    alternating keeps the comparison fair on a shared machine whose load drifts.
    """
    best = dict.fromkeys([*runs, "plain"], float("inf"))
    forward = 0.0
    for _ in range(rounds):
        for name, (model, kw) in runs.items():
            before, t0 = timer.seconds, time.perf_counter()
            segment(volume, model, **kw)
            seconds = time.perf_counter() - t0
            if name == "pipeline" and seconds < best[name]:
                forward = timer.seconds - before
            best[name] = min(best[name], seconds)
        t0 = time.perf_counter()
        plain(volume)
        best["plain"] = min(best["plain"], time.perf_counter() - t0)
    return best, best.pop("plain"), forward


def thread_gain(volume: np.ndarray, model: tuple, kw: dict) -> None:
    """Pipeline seconds with post-processing in one thread and in the default number."""
    default = postprocess_threads(torch.device(kw["device"]))
    best = {}
    for _ in range(2):
        for threads in sorted({1, default}):
            with mock.patch.object(engine, "postprocess_threads", lambda device, n=threads: n):
                t0 = time.perf_counter()
                segment(volume, model, **kw)
                seconds = time.perf_counter() - t0
            best[threads] = min(best.get(threads, seconds), seconds)
    print(f"post-processing in 1 thread: {best[1]:.2f} s; in {default} (the default here): "
          f"{best[default]:.2f} s; {best[1] / best[default]:.2f}x")


def candidates(device: str, batch: int) -> None:
    """Forward passes of untrained candidates through the engine's network runner."""
    dev = torch.device(device)
    x = torch.randn(batch, 1, 512, 512)
    for name, (arch, args) in CANDIDATES.items():
        info = ModelInfo(name, "oct-layers", arch, args, 1, OCT_CLASSES, DEFAULT_NORMALISATION)
        net = for_inference(info.build(), dev)
        mb = sum(p.numel() * p.element_size() for p in net.parameters()) / 1e6
        logits(net, x, None, size_divisor(info), dev)  # warm-up
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            logits(net, x, None, size_divisor(info), dev)
            times.append(time.perf_counter() - t0)
        print(f"  {name}: {mb:.2f} MB, {batch / min(times):.2f} B-scans/s forward")


def peak_rss(model: str, args: argparse.Namespace, folder: Path) -> None:
    n = args.rss_bscans
    parts = [oct_phantom((min(n, 128), 512, 512), seed=s).image for s in range(-(-n // 128))]
    path = folder / "tomogram.tif"
    tifffile.imwrite(path, np.concatenate(parts)[:n])
    del parts
    size = path.stat().st_size
    for how in ("read_oct", "memmap") if args.rss_memmap else ("read_oct",):
        command = [sys.executable, "-c", RSS_CHILD, str(path), model, args.device,
                   str(args.batch_size), how]
        r = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        peak = r["peak_kib"] * 1024
        print(f"peak RSS segmenting a {tuple(r['labels'])} uint16 TIFF ({size / 2**20:.0f} MiB) "
              f"opened by {how} ({r['kind']}): {peak / 2**20:.0f} MiB (after imports "
              f"{r['imports_kib'] / 1024:.0f} MiB); target <= {(size + 2**30) / 2**20:.0f} MiB -> "
              f"{PASS[peak <= size + 2**30]}; {r['labels'][0] / r['seconds']:.2f} B-scans/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bscans", type=int, default=128)
    ap.add_argument("--rss-bscans", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="builtin", help="model name or .safetensors file")
    ap.add_argument("--quick", action="store_true", help="skip the RSS subprocess, candidates")
    ap.add_argument("--rss-memmap", action="store_true", help="also measure RSS on a memory map")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        model, about = model_file(args.model, Path(tmp))
        print(f"model: {about}")
        phantom = oct_phantom((args.bscans, 512, 512), seed=0)
        volume = phantom.image
        kw = {"pixel_size_um": phantom.pixel_size_um, "device": args.device,
              "batch_size": args.batch_size}
        network, info = load_model(model)
        timer = ForwardTimer(network, args.device)
        runs = {"pipeline": ((network, info), kw)}
        tiled = info.tile and (info.tile[0] < volume.shape[1] or info.tile[1] < volume.shape[2])
        if tiled:
            runs["whole"] = ((load_model(model)[0], replace(info, tile=None)), kw)
        baseline = PlainLoop(model, volume, args.device)
        spent, plain, forward = side_by_side(volume, runs, baseline, timer)
        pipeline = spent["pipeline"]
        print(f"pipeline {volume.shape}: {pipeline:.1f} s, {len(volume) / pipeline:.2f} B-scans/s "
              f"(batch {args.batch_size}, post-processing on; best of 2)")
        ratio = pipeline / forward
        print(f"network forward inside it: {forward:.1f} s; "
              f"pipeline / forward = {ratio:.3f} (target <= 1.15 -> {PASS[ratio <= 1.15]})")
        print(f"plain MONAI sliding_window_inference loop (roi {baseline.roi}, "
              f"overlap 0.25, one B-scan at a time), run in turn with the pipeline, best of 2: "
              f"{plain:.1f} s; speed-up {plain / pipeline:.2f}x "
              f"(target >= 1.5 -> {PASS[plain / pipeline >= 1.5]})")
        if tiled:
            whole = spent["whole"]
            print(f"same model on whole B-scans (tile None instead of {info.tile}), also in turn: "
                  f"{whole:.1f} s, {len(volume) / whole:.2f} B-scans/s "
                  f"({plain / whole:.2f}x the plain loop)")
        if args.device != "cpu":
            thread_gain(volume, (network, info), kw)
        if not args.quick:
            peak_rss(model, args, Path(tmp))
            print(f"candidate architectures (untrained), forward pass of {args.batch_size} x 512"
                  " x 512:")
            candidates(args.device, args.batch_size)


if __name__ == "__main__":
    main()
