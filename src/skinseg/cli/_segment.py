"""``skinseg segment INPUT -o OUT.ome.tif``: OCT skin layers from any file or folder the readers open."""

from __future__ import annotations

import argparse
from pathlib import Path

from skinseg import io, progress
from skinseg.classes import OCT_CLASSES
from skinseg.cli._args import add_pixel_size, pixel_size
from skinseg.io.image_data import ImageData
from skinseg.segment.engine import SegmentationResult, iter_segment

DEFAULT_METHOD = "classical"
"""The better default on real B-scans (docs/segment.md has the figures)."""


def add_segment_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``segment`` and ``run``."""
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"classical, builtin, a user model name or a .safetensors file (default: {DEFAULT_METHOD})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=8, help="B-scans per network call (default 8)")
    p.add_argument("--no-postprocess", action="store_true", help="skip the anatomical post-processing")
    add_pixel_size(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment an OCT B-scan or tomogram into skin layers (labels OME-TIFF)")
    p.add_argument("input", help="OCT file or folder of B-scans (any format `skinseg info` reads)")
    p.add_argument("-o", "--output", required=True, help="labels file to write, e.g. layers.ome.tif")
    p.add_argument("--uncertainty", metavar="U.ome.tif", help="also write the uncertainty map (softmax entropy)")
    add_segment_options(p)
    p.set_defaults(func=run)


def read_input(args: argparse.Namespace) -> ImageData:
    """The OCT image named on the command line, with ``--pixel-size`` applied."""
    return io.read_oct(args.input, pixel_size_um=pixel_size(args))


def segment_with_bar(image: ImageData, args: argparse.Namespace, *, uncertainty: bool = False) -> SegmentationResult:
    """Run the engine with a progress bar on stderr."""
    work = iter_segment(
        image, args.method, device=args.device, batch_size=args.batch_size,
        postprocess=not args.no_postprocess, uncertainty=uncertainty,
    )
    result = progress.run(work, progress.cli_bar(f"segmenting ({args.method})", unit="B-scan"))
    for message in result.messages:
        print(message)
    return result


def write_result(path: str | Path, result: SegmentationResult, image: ImageData) -> Path:
    """Labels in the OCT class table, with where they came from."""
    return io.write_labels(path, result.labels, pixel_size_um=result.pixel_size_um, class_table=OCT_CLASSES,
                           metadata={"model": result.model, "source": image.source})


def run(args: argparse.Namespace) -> int:
    image = read_input(args)
    result = segment_with_bar(image, args, uncertainty=bool(args.uncertainty))
    print(write_result(args.output, result, image))
    if args.uncertainty:
        if result.uncertainty is None:
            print(f"no uncertainty map: {result.model} gives none")
        else:
            print(io.write_image(args.uncertainty, result.uncertainty.astype("float32"),
                                 pixel_size_um=result.pixel_size_um))
    return 0
