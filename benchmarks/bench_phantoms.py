"""Phantom generation speed (issue 2 target: each under 2 s on a 2-core CPU).

    python benchmarks/bench_phantoms.py [--repeats 5]

Prints best and median wall time for a (64, 256, 256) OCT phantom and a 1600×1200
biopsy phantom (both stains), measured side by side in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from skinseg.synth.biopsy import biopsy_phantom
from skinseg.synth.oct import oct_phantom

CASES = {
    "OCT phantom (64, 256, 256)": lambda seed: oct_phantom((64, 256, 256), seed=seed),
    "OCT phantom (64, 256, 256) + glass + gel": lambda seed: oct_phantom((64, 256, 256), seed=seed, glass=True, gel=True),
    "biopsy phantom 1200×1600 DAB": lambda seed: biopsy_phantom((1200, 1600), seed=seed, stain="dab"),
    "biopsy phantom 1200×1600 fluorescent": lambda seed: biopsy_phantom((1200, 1600), seed=seed, stain="fluorescent"),
}
TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for case in CASES.values():  # warm-up: imports, caches
        case(0)
    print(f"{'case':45s} {'best s':>8s} {'median s':>9s}  target < {TARGET_S} s")
    for name, case in CASES.items():
        times = []
        for seed in range(1, args.repeats + 1):
            start = time.perf_counter()
            case(seed)
            times.append(time.perf_counter() - start)
        best, median = min(times), statistics.median(times)
        verdict = "ok" if median < TARGET_S else "SLOW"
        print(f"{name:45s} {best:8.2f} {median:9.2f}  {verdict}")


if __name__ == "__main__":
    main()
