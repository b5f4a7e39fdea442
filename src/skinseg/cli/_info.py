"""``skinseg info PATH``: what the readers see in a file or folder."""

from __future__ import annotations

import argparse

from skinseg import io
from skinseg.errors import SkinsegInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show shape, dtype and pixel size (µm) of an image, volume or folder")
    p.add_argument("path", help="file or folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = str(args.path)
    if io.is_labels_file(path):
        img = io.read_labels(path)
        kind = f"labels ({img.metadata['class_table'].name})"
    elif io.claims_rgb(path):
        img, kind = io.read_rgb(path), "RGB image"
    elif io.claims_oct(path):
        img, kind = io.read_oct(path), "OCT (grey) image"
    else:
        raise SkinsegInputError(f"{path}: not a format skinseg reads (see docs/readers.md).")
    sizes = " × ".join(f"{p:g}" for p in img.pixel_size_um)
    known = "" if img.pixel_size_known else " (not recorded in the file: assumed)"
    print(f"{path}\n  kind:       {kind}\n  shape:      {tuple(img.data.shape)}  dtype {img.data.dtype}")
    print(f"  pixel size: {sizes} µm{known}\n  storage:    {type(img.data).__module__}.{type(img.data).__name__}")
    return 0
