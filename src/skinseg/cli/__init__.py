"""``skinseg`` command line: one module per subcommand, each over library functions.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from skinseg import __version__
from skinseg.cli import _crossings, _info, _measure, _phantom, _run, _segment, _train, _trainset
from skinseg.errors import SkinsegInputError

SUBCOMMANDS = (_run, _segment, _measure, _crossings, _train, _trainset, _phantom, _info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinseg",
        description="Skin OCT layers, epidermal thickness and biopsy nerve crossings.",
    )
    parser.add_argument("--version", action="version", version=f"skinseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skinseg`` console script."""
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return args.func(args)
    except SkinsegInputError as e:
        print(f"skinseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skinseg: interrupted", file=sys.stderr)
        return 130
