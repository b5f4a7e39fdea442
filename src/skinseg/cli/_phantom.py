"""``skinseg phantom oct|biopsy -o DIR``: a phantom with its exact ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phantom", help="write a phantom image with exact ground truth")
    p.add_argument("kind", choices=["oct", "biopsy"])
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs="+", default=[64, 256, 256], help="OCT: [n_bscans] depth width")
    p.add_argument("--glass", action="store_true", help="OCT: glass window on top")
    p.add_argument("--gel", action="store_true", help="OCT: coupling gel on top")
    p.add_argument("--stain", choices=["dab", "fluorescent"], default="dab", help="biopsy stain")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from skinseg.synth.export import write_biopsy_phantom, write_oct_phantom

    out = Path(args.output)
    if args.kind == "oct":
        written = write_oct_phantom(out, shape=tuple(args.shape), seed=args.seed, glass=args.glass, gel=args.gel)
    else:
        written = write_biopsy_phantom(out, seed=args.seed, stain=args.stain)
    for path in written:
        print(path)
    return 0
