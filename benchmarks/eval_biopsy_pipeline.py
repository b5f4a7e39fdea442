"""The whole nerve-crossing pipeline from the image alone, on held-out biopsy phantoms (issue 6).

Run::

    python benchmarks/eval_biopsy_pipeline.py [--first 1000] [--n 30] [--stain dab]
        [--tissue classical|MODEL] [--nerves classical|MODEL] [--rule skeleton|seed]
    python benchmarks/eval_biopsy_pipeline.py --speed [--repeats 3]

Scores :func:`skinseg.segment.biopsy.iter_count_crossings` against the phantoms' exact
truth: count Pearson r and mean absolute error per image, crossing locations matched one
to one within 10 µm (precision, recall), dermis Dice (pooled), nerve Dice and the seed's
modified Dice k = 1 and 3 (mean per image). Held-out phantoms: seeds 1000–1029 as in
``benchmarks/eval_crossings.py`` (training uses 20000–29999, scripts/train_biopsy.py).
``--speed`` times the whole pipeline on one 1200 × 1600 phantom (goal ≤ 10 s).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np

from skinseg.measure.crossings import CrossingParams
from skinseg.measure.metrics import dice, modified_dice, score_crossings
from skinseg.segment.biopsy import count_crossings
from skinseg.synth.biopsy import biopsy_phantom

MAX_DIST_UM = 10.0


def evaluate(args: argparse.Namespace) -> None:
    stains = ("dab", "fluorescent") if args.stain == "both" else (args.stain,)
    params = CrossingParams(rule=args.rule)
    found, true, nerve_scores = [], [], []
    inter = total = 0
    started = time.perf_counter()
    for seed in range(args.first, args.first + args.n):
        for stain in stains:
            ph = biopsy_phantom(seed=seed, stain=stain)
            a = count_crossings(ph.image, ph.pixel_size_um, tissue_method=args.tissue,
                                nerve_method=args.nerves, params=params, device=args.device)
            px = ph.pixel_size_um
            found.append(a.crossings.points * px)
            true.append(ph.crossings * px)
            pred_d, true_d = a.tissue.labels == 2, ph.tissue == 2
            inter += int((pred_d & true_d).sum())
            total += int(pred_d.sum() + true_d.sum())
            nerve_scores.append([dice(a.nerves.mask, ph.nerves)]
                                + [modified_dice(a.nerves.mask, ph.nerves, k) for k in (1, 3)])
            if args.verbose:
                print(f"seed {seed} {stain}: true {ph.count}, found {a.crossings.count}", flush=True)
    score = score_crossings(found, true, MAX_DIST_UM)
    nerve = np.nanmean(np.array(nerve_scores), axis=0)
    print(f"{len(found)} phantoms (seeds {args.first}–{args.first + args.n - 1}, {'+'.join(stains)}), "
          f"tissue {args.tissue}, nerves {args.nerves}, rule {args.rule}, "
          f"{time.perf_counter() - started:.0f} s")
    print(f"  count: r {score.counts.r:.3f}, MAE {score.counts.mae:.2f}, bias {score.counts.bias:+.2f} "
          "(goals: zero-training r ≥ 0.85, MAE ≤ 1.5; trained r ≥ 0.9)")
    print(f"  locations within {MAX_DIST_UM:g} µm: precision {score.precision:.3f}, recall {score.recall:.3f}")
    print(f"  dermis Dice {2 * inter / total:.4f} (goal trained ≥ 0.986)")
    print(f"  nerves: Dice {nerve[0]:.3f}, modified Dice k=1 {nerve[1]:.3f}, k=3 {nerve[2]:.3f} (goal k=3 ≥ 0.95)")


def speed(args: argparse.Namespace) -> None:
    ph = biopsy_phantom(seed=args.first)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = count_crossings(ph.image, ph.pixel_size_um, tissue_method=args.tissue, nerve_method=args.nerves,
                            device=args.device)
        times.append(time.perf_counter() - t)
    print(f"whole pipeline on {ph.image.shape[1]}×{ph.image.shape[0]} (tissue {args.tissue}, nerves "
          f"{args.nerves}): median {statistics.median(times):.2f} s, min {min(times):.2f} s of "
          f"{args.repeats} (goal ≤ 10 s); {a.crossings.count} crossings, {ph.count} true")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first", type=int, default=1000, help="first phantom seed (default 1000)")
    ap.add_argument("--n", type=int, default=30, help="phantoms per stain (default 30)")
    ap.add_argument("--stain", choices=("dab", "fluorescent", "both"), default="dab")
    ap.add_argument("--tissue", default="classical", help="classical, or a biopsy-tissue model")
    ap.add_argument("--nerves", default="classical", help="classical, or a biopsy-nerves model")
    ap.add_argument("--rule", choices=("skeleton", "seed"), default="skeleton")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--speed", action="store_true", help="time the whole pipeline instead")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per phantom")
    args = ap.parse_args(argv)
    speed(args) if args.speed else evaluate(args)


if __name__ == "__main__":
    main()
