"""``skinseg crossings IMAGE -o DIR``: nerve crossings of the DEJ and IENFD from a biopsy image.

Writes ``crossings.csv`` (one row per crossing, px and µm), ``summary.csv`` (count, IENFD
per mm of epidermal surface and of DEJ, lengths, pixel size, rule and parameters),
``overlay.png`` and the tissue and nerve labels as OME-TIFF. ``--sample`` runs on the
DAB biopsy phantom (made on the fly) and also writes its image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skinseg import io, progress
from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.measure.crossing_report import headline, overlay, write_tables
from skinseg.measure.crossings import CrossingParams

SAMPLE_SHAPE = (1200, 1600)

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crossings",
        help="nerve fibres crossing the DEJ in a skin-biopsy image: count, IENFD per mm, CSV, overlay",
    )
    p.add_argument("input", nargs="?", help="RGB biopsy image (TIFF, PNG, JPEG)")
    p.add_argument("--sample", action="store_true", help="use the DAB biopsy phantom instead of INPUT")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--pixel-size", type=float, metavar="UM", help="µm per pixel (default: from the file)")
    p.add_argument("--tissue", default="classical", help="classical (default), builtin (the shipped phantom-trained UNet), or a biopsy-tissue .safetensors model")
    p.add_argument("--nerves", default="classical", help="classical (default), builtin (the shipped phantom-trained HED), or a biopsy-nerves .safetensors model")
    p.add_argument("--rule", choices=["skeleton", "seed"], default=CrossingParams.rule,
                   help="skeleton: distinct fibres changing side (default); seed: the paper's DBSCAN rule")
    defaults = CrossingParams()
    p.add_argument("--band-width-um", type=float,
                   help=f"seed rule: boundary band width in µm (default {defaults.band_width_um})")
    p.add_argument("--dbscan-eps-um", type=float,
                   help=f"seed rule: DBSCAN ε in µm (default {defaults.dbscan_eps_um})")
    p.add_argument("--junction-um", type=float,
                   help=f"skeleton rule: junction distance to the boundary in µm (default {defaults.junction_um})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.set_defaults(func=run)


def crossing_params(rule: str, **um_values: float | None) -> CrossingParams:
    """Default parameters of ``rule`` with the values given (None keeps the default)."""
    return CrossingParams(rule=rule, **{k: v for k, v in um_values.items() if v is not None})


def _read(args: argparse.Namespace, out: Path) -> ImageData:
    if args.sample == bool(args.input):
        raise SkinsegInputError("give either an IMAGE file or --sample, not both or neither.")
    if args.pixel_size is not None and not (np.isfinite(args.pixel_size) and args.pixel_size > 0):
        raise SkinsegInputError(f"--pixel-size must be a positive number of µm per pixel; got {args.pixel_size}.")
    if args.sample:
        from skinseg.synth.biopsy import biopsy_phantom

        phantom = biopsy_phantom(SAMPLE_SHAPE, seed=0, stain="dab")
        image = phantom.to_image_data()
        written = io.write_image(out / "image.ome.tif", phantom.image, pixel_size_um=image.pixel_size_um, rgb=True)
        image.source = str(written)
        print(f"sample: DAB biopsy phantom {SAMPLE_SHAPE} ({phantom.count} true crossings) written to {image.source}")
    else:
        image = io.read_rgb(args.input, pixel_size_um=args.pixel_size)
    if not image.pixel_size_known:
        raise SkinsegInputError(
            f"{image.source}: the file records no pixel size; pass --pixel-size UM (µm per pixel, e.g. 0.5 at 20×)."
        )
    dy, dx = image.pixel_size_um
    if not np.isclose(dy, dx, rtol=0.01):
        raise SkinsegInputError(
            f"{image.source}: pixels are not square ({dy:g} × {dx:g} µm); pass --pixel-size UM to use one size."
        )
    return image


def run(args: argparse.Namespace) -> int:
    from skinseg.segment.biopsy import iter_count_crossings  # torch and models: only when counting

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    image = _read(args, out)
    params = crossing_params(
        args.rule, band_width_um=args.band_width_um, dbscan_eps_um=args.dbscan_eps_um, junction_um=args.junction_um
    )
    work = iter_count_crossings(
        image, image.pixel_size_um[0], tissue_method=args.tissue, nerve_method=args.nerves, params=params,
        device=args.device,
    )  # fmt: skip
    analysis = progress.run(work, progress.cli_bar("counting crossings"))
    result = analysis.crossings
    px = result.pixel_size_um
    meta = {"source": image.source}
    written = {
        **write_tables(out, result.points, result, source=image.source, tissue=args.tissue, nerves=args.nerves),
        "tissue": io.write_labels(out / "tissue.ome.tif", analysis.tissue.labels, pixel_size_um=px,
                                  class_table=TISSUE_CLASSES, metadata={**meta, "model": args.tissue}),
        "nerves": io.write_labels(out / "nerves.ome.tif", analysis.nerves.mask, pixel_size_um=px,
                                  class_table=NERVE_CLASSES, metadata={**meta, "model": args.nerves}),
        "overlay": overlay(out / "overlay.png", image, analysis.nerves.mask, result),
    }  # fmt: skip
    print(headline(result))
    for note in result.warnings:
        print(f"note: {note}")
    for path in written.values():
        print(path)
    return 0
