"""``skinseg`` command line: subcommands over the library functions."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from skinseg import __version__
from skinseg.errors import SkinsegInputError


def _cmd_info(args: argparse.Namespace) -> int:
    """Print what the readers see in a file or folder."""
    from skinseg import io

    path = str(args.path)
    if io.is_labels_file(path):
        img = io.read_labels(path)
        kind = f"labels ({img.metadata['class_table'].name})"
    elif io.claims_rgb(path):
        img, kind = io.read_rgb(path), "RGB image"
    elif io.claims_oct(path):
        img, kind = io.read_oct(path), "OCT (grey) image"
    else:
        raise SkinsegInputError(f"{path}: not a format skinseg reads (see `docs/readers.md`).")
    sizes = " × ".join(f"{p:g}" for p in img.pixel_size_um)
    known = "" if img.pixel_size_known else " (not recorded in the file: assumed)"
    print(f"{path}\n  kind:       {kind}\n  shape:      {tuple(img.data.shape)}  dtype {img.data.dtype}")
    print(f"  pixel size: {sizes} µm{known}\n  storage:    {type(img.data).__module__}.{type(img.data).__name__}")
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    """Write a phantom with its ground truth to a folder."""
    from skinseg.synth.export import write_biopsy_phantom, write_oct_phantom

    out = Path(args.output)
    if args.kind == "oct":
        written = write_oct_phantom(out, shape=tuple(args.shape), seed=args.seed, glass=args.glass, gel=args.gel)
    else:
        written = write_biopsy_phantom(out, seed=args.seed, stain=args.stain)
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinseg",
        description="Skin OCT layers, epidermal thickness and biopsy nerve crossings.",
    )
    parser.add_argument("--version", action="version", version=f"skinseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="show shape, dtype and pixel size (µm) of an image, volume or folder")
    p.add_argument("path", help="file or folder")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("phantom", help="write a phantom image with exact ground truth")
    p.add_argument("kind", choices=["oct", "biopsy"])
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs="+", default=[64, 256, 256], help="OCT: n_bscans depth width")
    p.add_argument("--glass", action="store_true", help="OCT: glass window on top")
    p.add_argument("--gel", action="store_true", help="OCT: coupling gel on top")
    p.add_argument("--stain", choices=["dab", "fluorescent"], default="dab", help="biopsy stain")
    p.set_defaults(func=_cmd_phantom)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skinseg`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    warnings.simplefilter("default")
    try:
        return func(args)
    except SkinsegInputError as e:
        print(f"skinseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skinseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
