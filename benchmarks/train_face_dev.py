"""Retraining on real OCT: train on face-dev B-scans, score on held-out ones.

Run: ``python benchmarks/train_face_dev.py [--quick] [--split test|val] [--recipes A B ...]
[--out DIR] [--set FIELD=VALUE ...] [--start MODEL] [--arguments JSON] [--neighbours K]`` (``--set``
overrides :class:`TrainConfig` fields of every recipe trained, for sweeps, e.g. ``--set
learning_rate=1e-3 'patch=[160,512]'``; ``augmentation`` takes changes to
:func:`skinseg.train.oct_augmentation`'s defaults, e.g. ``--set 'augmentation={"zoom":[1,1]}'``;
``--start`` fine-tunes a model file instead, whose classes, input channels, surface window
and network replace the recipe's (a 7-class start on these 3-class masks wants ``--set
dice_present_only=true``); ``--arguments`` replaces the network arguments of recipes
trained from scratch, e.g. ``'{"channels": [12, 24, 48, 96, 192], ...}'``, and
``--neighbours`` their neighbour B-scans per side (channels); ``--threads 1``
where another process keeps a core busy: two torch threads then wait on each other and
training runs up to 10× slower).

``../shared/data/skin-oct-face-dev`` holds 60 adjacent B-scans of one tomogram with expert
epidermis masks (converted per column to air / epidermis / dermis by
:func:`skinseg.io.masks.band_mask_to_labels`). B-scans 0001–0040 train, 0041–0050
validate (early stopping, tuning), 0051–0060 are the untouched test set. Each recipe
trains through the public API (:func:`skinseg.train.train`) in its own process, so its
wall time, CPU time and peak RSS are its own; the models are then run with
:func:`skinseg.segment.engine.segment` (post-processing on) over the split's B-scans
(and the two before it, for neighbour channels), and the split is scored beside the
classical method over the whole tomogram:

- epidermis Dice (stratum corneum + epidermis + DEJ against the mask band), mean per B-scan;
- surface and DEJ mean absolute error (px) against the mask's top and bottom edges, and
  the DEJ error of the rule "true surface + 30 px";
- per-column thickness correlation with the masks, mean per B-scan and pooled;
- faults: A-scans (of 5120) with more than one run of epidermis, and with more than one
  run of DEJ-or-dermis (a DEJ crossed twice), after post-processing and before it (raw
  argmax); :func:`eval_oct_real.faults`.

Recipe ``aligned`` (the best found) flattens each B-scan to the classical skin surface and
keeps a 160-row window from 32 rows above it (``surface_window``, recorded in the model
file, repeated by the inference engine) and saves a moving average of the weights
(``weight_average``); ``wide`` is ``aligned`` with a 1.5× wider network (12–192 channels):
on the validation B-scans over seeds 0/1/2, r 0.60/0.61/0.53 against 0.57/0.53/0.53 and
DEJ MAE 2.29/2.23/2.23 px against 2.28/2.32/2.42 px, in about 1.3× the training time;
``deep`` trains on whole-depth 512 × 128 patches.

``--quick`` trains each recipe for a few batches (a 1–2 minute smoke run); its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_oct_real import DATA, FACE_PIXEL_UM, RULE_PX, faults, load_face  # noqa: E402

from skinseg.classes import OCT_CLASSES, ClassTable  # noqa: E402
from skinseg.measure.boundaries import surface_depth  # noqa: E402
from skinseg.measure.metrics import (  # noqa: E402
    boundary_mae,
    dice,
    pearson_r,
    thickness_correlation,
)
from skinseg.models.files import load_model  # noqa: E402
from skinseg.models.registry import resolve_model  # noqa: E402
from skinseg.progress import run  # noqa: E402
from skinseg.segment.classical import segment_classical  # noqa: E402
from skinseg.segment.engine import segment  # noqa: E402
from skinseg.segment.postprocess import PostprocessParams  # noqa: E402
from skinseg.train import (  # noqa: E402
    ALIGNED_INPUT, ALIGNED_UNET, TrainConfig, aligned_config, new_model_info, oct_augmentation,
    slices_for_model, slices_from_pairs, train,
)

ROOT = Path(__file__).resolve().parents[1]
FACE = DATA / "skin-oct-face-dev"
SPLITS = {"train": slice(0, 40), "val": slice(40, 50), "test": slice(50, 60)}
SC, DERMIS = OCT_CLASSES.value_of("stratum corneum"), OCT_CLASSES.value_of("dermis")
DEJ = OCT_CLASSES.value_of("DEJ")
_CONTEXT = 2  # B-scans segmented before a split, so its first ones have their neighbours
FACE_CLASSES = ClassTable(
    "OCT air/epidermis/dermis",
    tuple(c for c in OCT_CLASSES.classes if c.name in ("background", "epidermis", "dermis")),
)
"""What the masks label: air, the epidermis band, dermis (values of the OCT table)."""
FAST_UNET: dict[str, Any] = ALIGNED_UNET | {"channels": [8, 16, 32, 64, 128]}
"""MONAI UNet 8–128, one residual unit, batch norm: about 3× faster than the built-in's;
the recipe's UNet 12–192 (``wide``) takes about 1.3× its training time here."""


@dataclass(frozen=True)
class Recipe:
    """One way to train: start (``"builtin"`` or ``"scratch"``), input and configuration.

    A model start (the built-in model, or a file given by ``--start``) brings its own
    classes, input and network: ``neighbours``, ``surface_window`` and ``arguments``
    serve the scratch start only.
    """

    start: str
    config: TrainConfig
    neighbours: int = 0
    surface_window: dict[str, int] | None = None
    arguments: dict[str, Any] = field(default_factory=lambda: dict(FAST_UNET))


ALIGNED = aligned_config(device="cpu")
"""How ``aligned`` and ``wide`` train (:mod:`skinseg.train.recipes`): flattened 160 × 512
windows, weights averaged."""
RECIPES: dict[str, Recipe] = {
    "builtin": Recipe("builtin", TrainConfig(
        epochs=6, batch_size=4, patch=(256, 256), learning_rate=5e-4, schedule="cosine",
        patience=100, class_weights=None, class_crops=1.0, dice_present_only=True, device="cpu")),
    "scratch": Recipe("scratch", TrainConfig(
        epochs=14, batch_size=4, patch=(256, 256), learning_rate=2e-3, schedule="cosine",
        patience=100, class_weights=None, class_crops=1.0, device="cpu"), neighbours=1),
    "deep": Recipe("scratch", TrainConfig(
        epochs=30, batch_size=4, patch=(512, 128), learning_rate=2e-3, schedule="cosine",
        patience=100, class_weights=None, class_crops=1.0, device="cpu"), neighbours=1),
    "aligned": Recipe("scratch", ALIGNED, **ALIGNED_INPUT),
    "wide": Recipe("scratch", ALIGNED, **ALIGNED_INPUT, arguments=dict(ALIGNED_UNET)),
}


def _quick(config: TrainConfig) -> TrainConfig:
    """A few small batches: checks the pipeline, measures nothing."""
    return replace(config, epochs=2, steps_per_epoch=3, batch_size=2, patch=(128, 128))


def _split_labels(truth: np.ndarray, part: str) -> np.ndarray:
    """Truth labels on the B-scans of ``part`` only: the others count as unannotated."""
    labels = np.zeros_like(truth)
    labels[SPLITS[part]] = truth[SPLITS[part]]
    return labels


def _overridden(config: TrainConfig, settings: list[str]) -> TrainConfig:
    """``config`` with ``field=json-value`` settings from the command line (sweeps).

    ``augmentation`` takes a JSON object of changes to :func:`oct_augmentation`'s defaults.
    """
    values = {key: json.loads(value) for key, value in (s.split("=", 1) for s in settings)}
    if "augmentation" in values:
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in values["augmentation"].items()}
        values["augmentation"] = oct_augmentation(**changes)
    return replace(config, **values)


def _start(
    name: str, pairs: dict[str, list], start: Path | None, arguments: dict[str, Any] | None,
    neighbours: int | None = None,
) -> tuple[dict[str, Any], Any, str]:
    """Slices per part, the start of :func:`train` (model file or new ModelInfo), its name.

    ``start`` (``--start``) replaces the recipe's own start; ``arguments`` (``--arguments``)
    and ``neighbours`` (``--neighbours``) its network arguments and neighbour channels per
    side when it trains from scratch.
    """
    recipe = RECIPES[name]
    if start is None and recipe.start == "scratch":
        neighbours = recipe.neighbours if neighbours is None else neighbours
        slices = {part: slices_from_pairs(p, FACE_CLASSES, neighbours=neighbours,
                                          surface_window=recipe.surface_window,
                                          pixel_size_um=FACE_PIXEL_UM[1:])
                  for part, p in pairs.items()}
        begin = new_model_info(
            slices["train"], name=f"face-dev {name}", task="oct-layers",
            arguments=arguments or recipe.arguments, pixel_size_um=FACE_PIXEL_UM[1:],
        )
        return slices, begin, "scratch"
    entry = resolve_model(start or "builtin")
    slices = {part: slices_for_model(p, entry.info, pixel_size_um=FACE_PIXEL_UM[1:]) for part, p in pairs.items()}
    return slices, entry.path, f"{entry.info.name} ({entry.path})"


def train_one(
    name: str, out: Path, quick: bool, settings: list[str] = (), start: Path | None = None,
    arguments: dict[str, Any] | None = None, threads: int = 2, neighbours: int | None = None,
) -> dict[str, Any]:
    """Train recipe ``name`` into ``out/name.safetensors``; wall, CPU time and peak RSS."""
    torch.set_num_threads(threads)
    config = _overridden(_quick(RECIPES[name].config) if quick else RECIPES[name].config, list(settings))
    _, images, truth = load_face(FACE)
    pairs = {part: [(images, _split_labels(truth, part), "skin-oct-face-dev")] for part in ("train", "val")}
    slices, begin, started_from = _start(name, pairs, start, arguments, neighbours)
    data = {"source": "skin-oct-face-dev", "train": "0001-0040", "validation": "0041-0050"}
    output = out / f"{name}.safetensors"
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(train(slices["train"], slices["val"], output, start=begin, config=config, data=data))
    return {
        "recipe": name, "started_from": started_from, "threads": threads, "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epochs": len(result.history), "best_epoch": result.best_epoch, "stopped": result.stopped,
        "best_val_dice": result.history[result.best_epoch - 1].val_dice, "path": str(output),
    }


def _top_of(labels: np.ndarray, value: int) -> np.ndarray:
    """First row of ``value`` per A-scan (NaN where none): the epidermis band's bottom edge."""
    hit = labels == value
    first = np.argmax(hit, axis=-2).astype(np.float32)
    first[~hit.any(axis=-2)] = np.nan
    return first


def score(labels: np.ndarray, surface: np.ndarray, dej: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Figures of one method on B-scans ``(n, depth, width)`` against the mask labels."""
    t_surface, t_dej = surface_depth(truth), _top_of(truth, DERMIS)
    epidermis = (labels >= SC) & (labels <= DEJ)
    per = np.array([
        (dice(epidermis[i], truth[i] == 4), boundary_mae(surface[i], t_surface[i]),
         boundary_mae(dej[i], t_dej[i]), boundary_mae(t_surface[i] + RULE_PX, t_dej[i]),
         thickness_correlation(surface[i], dej[i], t_surface[i], t_dej[i]))
        for i in range(len(labels))
    ])
    mean = per.mean(axis=0)
    return {
        "dice": mean[0], "surf_mae": mean[1], "dej_mae": mean[2], "rule30_mae": mean[3],
        "r_mean": mean[4], "r_pooled": pearson_r(dej - surface, t_dej - t_surface),
        **dict(zip(("epi2+", "dej2+"), faults(labels))),
    }


def evaluate_model(path: Path, images: np.ndarray, truth: np.ndarray, part: str) -> dict[str, float]:
    """Score a model file on ``part``, post-processed; raw-argmax faults beside."""
    network, info = load_model(path)
    # the masks draw no DEJ band: their DEJ is the band's bottom edge, so a model that
    # predicts a DEJ class gets the thinnest band (1 px, the last epidermis row)
    params = PostprocessParams(max_dej_um=FACE_PIXEL_UM[1])
    pick = SPLITS[part]
    context = min(pick.start, _CONTEXT)  # B-scans before the split: neighbour channels
    volume = images[pick.start - context : pick.stop]
    kwargs = dict(pixel_size_um=FACE_PIXEL_UM, batch_size=4)
    labels = segment(volume, (network, info), postprocess=params, **kwargs).labels[context:]
    raw = segment(volume, (network, info), postprocess=False, **kwargs).labels[context:]
    figures = score(labels, surface_depth(labels), _top_of(labels, DERMIS), truth[pick])
    return figures | dict(zip(("raw_epi2+", "raw_dej2+"), faults(raw)))


def evaluate_classical(images: np.ndarray, truth: np.ndarray, part: str) -> dict[str, float]:
    """The classical method over the whole tomogram, scored on ``part``."""
    result = segment_classical(images, pixel_size_um=FACE_PIXEL_UM)
    pick = SPLITS[part]
    return score(result.labels[pick], result.surface[pick], result.dej[pick], truth[pick])


def _train_in_child(name: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train in a fresh process so that its peak RSS and CPU time are its own."""
    cmd = [sys.executable, __file__, "--train-one", name, "--out", str(out), "--threads", str(args.threads)]
    cmd += ["--quick"] * args.quick
    cmd += ["--start", str(args.start)] * (args.start is not None)
    cmd += ["--arguments", json.dumps(args.arguments)] * (args.arguments is not None)
    cmd += ["--neighbours", str(args.neighbours)] * (args.neighbours is not None)
    subprocess.run(cmd + ["--set", *args.set], check=True)
    return _trained(name, out)


def _trained(name: str, out: Path) -> dict[str, Any]:
    """What training recipe ``name`` into ``out`` recorded (:func:`train_one`)."""
    return json.loads((out / f"{name}.json").read_text())


COLUMNS = ("dice", "surf_mae", "dej_mae", "rule30_mae", "r_mean", "r_pooled", "epi2+", "dej2+",
           "raw_epi2+", "raw_dej2+")


def _print_row(name: str, figures: dict[str, float]) -> None:
    cells = [f"{figures[c]:9.4f}" if c in figures and isinstance(figures[c], float) else
             f"{figures.get(c, '-'):>9}" for c in COLUMNS]
    print(f"{name:>10} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few batches per recipe")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="B-scans scored")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=["builtin", "aligned"])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "face-dev")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="score the models an earlier run left in --out, without training")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override TrainConfig fields, JSON values (e.g. learning_rate=1e-3)")
    parser.add_argument("--start", type=Path, help="model file every recipe trained starts from "
                        "(its classes, input and network replace the recipe's)")
    parser.add_argument("--arguments", type=json.loads, metavar="JSON",
                        help="network arguments of recipes trained from scratch, e.g. "
                        "'{\"channels\": [12, 24, 48, 96, 192], ...}' (replaces the recipe's)")
    parser.add_argument("--neighbours", type=int, metavar="K",
                        help="neighbour B-scans per side as channels, for recipes trained from scratch")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads while training; 1 where another process keeps a core busy "
                        "(2 threads then wait on each other: up to 10x slower)")
    parser.add_argument("--train-one", choices=sorted(RECIPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not FACE.is_dir():
        raise SystemExit(f"skipped: {FACE} is absent (the face-dev data live beside the repository)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.train_one:
        figures = train_one(args.train_one, args.out, args.quick, args.set, args.start, args.arguments,
                            args.threads, args.neighbours)
        (args.out / f"{args.train_one}.json").write_text(json.dumps(figures))
        return
    _, images, truth = load_face(FACE)
    if args.evaluate_only:
        trained = [_trained(name, args.out) for name in args.recipes]
    else:
        load = os.getloadavg()[0]
        trained = [_train_in_child(name, args.out, args) for name in args.recipes]
        print(f"load average (1 min) before training {load:.2f}, after {os.getloadavg()[0]:.2f}")
    for t in trained:
        print(f"{t['recipe']}: from {t['started_from']}; {t['epochs']} epochs (best {t['best_epoch']}, "
              f"{t['stopped']}), {t.get('threads', 2)} thread(s), wall {t['wall_s']:.0f} s, CPU {t['cpu_s']:.0f} s, "
              f"peak RSS {t['peak_rss_mb']:.0f} MB; val Dice {t['best_val_dice']}")
    print(f"\n{args.split} B-scans {SPLITS[args.split].start + 1:04d}-{SPLITS[args.split].stop:04d}")
    print(f"{'method':>10} " + " ".join(f"{c:>9}" for c in COLUMNS))
    _print_row("classical", evaluate_classical(images, truth, args.split))
    for t in trained:
        _print_row(t["recipe"], evaluate_model(args.out / f"{t['recipe']}.safetensors", images, truth, args.split))
    print("goals: Dice >= 0.955, surface MAE <= 0.75 px, DEJ MAE <= 2.3 px, r >= 0.7, "
          "<= 600 s per training")


if __name__ == "__main__":
    main()
