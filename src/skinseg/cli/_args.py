"""Options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_pixel_size(parser: argparse.ArgumentParser, axes: str = "[B-scan] depth width") -> None:
    """``--pixel-size UM [UM …]``: one value for every axis, or one per axis."""
    parser.add_argument("--pixel-size", type=float, nargs="+", metavar="UM",
                        help=f"µm per pixel (one value, or one per axis: {axes}); default: from the file")


def pixel_size(args: argparse.Namespace) -> float | list[float] | None:
    """``--pixel-size`` as the readers take it: one number, one per axis, or None."""
    sizes = args.pixel_size
    return sizes[0] if sizes and len(sizes) == 1 else sizes
