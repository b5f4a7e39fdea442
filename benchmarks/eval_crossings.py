"""Crossing rules on the ground-truth masks of held-out biopsy phantoms (issue 6).

Run: ``python benchmarks/eval_crossings.py [--first 1000] [--n 30]`` scores the seed rule
and the skeleton rule side by side on the phantoms' true tissue and nerve masks: Pearson
r and mean absolute error of counts, location precision and recall within 10 µm, and,
per fibre kind, the true crossings missed and the crossings found in excess.
``--speed`` times the crossing step alone on one 1200 × 1600 phantom (goal ≤ 0.5 s).

Held-out phantoms: seeds 1000–1029 by default (training sets use other seeds).
:func:`evaluate` and :func:`kind_table` take any found points, so a full-pipeline
evaluation can score its own results the same way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from skinseg.measure.crossings import CrossingParams, find_crossings
from skinseg.measure.metrics import CrossingScore, match_points, score_crossings
from skinseg.synth.biopsy import BiopsyPhantom, biopsy_phantom

MAX_DIST_UM = 10.0
RULES = ("seed", "skeleton")


def fibre_kind(fibre) -> str:
    """Kind for the tables; unrelated close pairs are ``close_pair``."""
    return "close_pair" if fibre.kind == "crossing" and fibre.hard else fibre.kind


def nearest_fibre(ph: BiopsyPhantom, point: np.ndarray, radius_px: float) -> str:
    """Kind of the fibre with the nerve pixel nearest ``point`` (``"none"`` beyond ``radius_px``)."""
    r, c = np.rint(point).astype(int)
    k = int(np.ceil(radius_px))
    r0, c0 = max(r - k, 0), max(c - k, 0)
    window = ph.fibre_labels[r0 : r + k + 1, c0 : c + k + 1]
    hits = np.argwhere(window > 0)
    if hits.size == 0:
        return "none"
    d = np.hypot(hits[:, 0] + r0 - point[0], hits[:, 1] + c0 - point[1])
    if d.min() > radius_px:
        return "none"
    return fibre_kind(ph.fibres[int(window[tuple(hits[np.argmin(d)])]) - 1])


def kind_table(phantoms: Sequence[BiopsyPhantom], found: Sequence[np.ndarray]) -> dict[str, Counter]:
    """Per fibre kind: ``fibres``, ``true`` crossings, ``missed`` and ``extra`` found points.

    Found points are ``(n, 2)`` px per phantom; a point is extra when no true crossing is
    matched to it within 10 µm and is blamed on the fibre nearest to it.
    """
    table: dict[str, Counter] = {}
    for ph, points in zip(phantoms, found):
        px = ph.pixel_size_um
        owner = [fibre_kind(f) for f in ph.fibres for _ in range(f.n_crossings)]
        truth = np.concatenate([f.crossings for f in ph.fibres] + [np.empty((0, 2))])
        match = match_points(points * px, truth * px, MAX_DIST_UM)
        for f in ph.fibres:
            table.setdefault(fibre_kind(f), Counter())["fibres"] += 1
        for i, kind in enumerate(owner):
            table[kind]["true"] += 1
            table[kind]["missed"] += i not in set(match.true_index)
        for j in set(range(len(points))) - set(match.pred_index):
            table.setdefault(nearest_fibre(ph, points[j], MAX_DIST_UM / px), Counter())["extra"] += 1
    return table


def evaluate(phantoms: Sequence[BiopsyPhantom], found: Sequence[np.ndarray]) -> CrossingScore:
    """Counts and locations (within 10 µm) of found points (px) against the phantoms' truth."""
    return score_crossings(
        [p * ph.pixel_size_um for p, ph in zip(found, phantoms)],
        [ph.crossings * ph.pixel_size_um for ph in phantoms], MAX_DIST_UM,
    )


def print_scores(scores: dict[str, CrossingScore], tables: dict[str, dict[str, Counter]]) -> None:
    print(f"{'rule':10} {'r':>6} {'MAE':>6} {'bias':>6} {'prec':>6} {'recall':>6}")
    for rule, s in scores.items():
        print(f"{rule:10} {s.counts.r:6.3f} {s.counts.mae:6.2f} {s.counts.bias:+6.2f} "
              f"{s.precision:6.3f} {s.recall:6.3f}")
    kinds = sorted({k for t in tables.values() for k in t})
    print(f"\n{'kind':20} {'fibres':>6} {'true':>5}" + "".join(f" {r + ' miss/extra':>20}" for r in tables))
    for kind in kinds:
        first = next(iter(tables.values())).get(kind, Counter())
        row = f"{kind:20} {first['fibres']:6d} {first['true']:5d}"
        for t in tables.values():
            c = t.get(kind, Counter())
            row += f" {c['missed']:>9d}/{c['extra']:<10d}"
        print(row)


def speed(seed: int, repeats: int) -> None:
    ph = biopsy_phantom(seed=seed)
    print(f"crossing step on {ph.tissue.shape[1]}×{ph.tissue.shape[0]} (seed {seed}, {ph.count} crossings), "
          f"best and median of {repeats} (CPU time: about the wall time on an idle machine, all steps single-threaded):")
    for rule in RULES:
        find_crossings(ph.tissue, ph.nerves, ph.pixel_size_um, CrossingParams(rule=rule))  # warm up imports
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            find_crossings(ph.tissue, ph.nerves, ph.pixel_size_um, CrossingParams(rule=rule))
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"  {rule:9} wall {min(wall):.3f} s  {statistics.median(wall):.3f} s   "
              f"CPU {min(cpu):.3f} s  {statistics.median(cpu):.3f} s")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=1000, help="first phantom seed (default 1000)")
    ap.add_argument("--n", type=int, default=30, help="number of phantoms (default 30)")
    ap.add_argument("--speed", action="store_true", help="time the crossing step instead")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.speed:
        speed(args.first, args.repeats)
        return
    phantoms = [biopsy_phantom(seed=s) for s in range(args.first, args.first + args.n)]
    found = {
        rule: [find_crossings(ph.tissue, ph.nerves, ph.pixel_size_um, CrossingParams(rule=rule)).points
               for ph in phantoms]
        for rule in RULES
    }
    print(f"{args.n} phantoms, seeds {args.first}–{args.first + args.n - 1}, ground-truth masks; "
          f"true counts {min(ph.count for ph in phantoms)}–{max(ph.count for ph in phantoms)}")
    print_scores({r: evaluate(phantoms, f) for r, f in found.items()},
                 {r: kind_table(phantoms, f) for r, f in found.items()})


if __name__ == "__main__":
    main()
