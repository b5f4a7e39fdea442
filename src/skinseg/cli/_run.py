"""``skinseg run IMAGE -o DIR``: segment with the default method and measure, in one go.

``skinseg run --sample -o DIR`` does the same on the bundled OCT phantom (made on the fly,
deterministic) and also writes the image, so the result can be opened in napari.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skinseg import io
from skinseg.cli._measure import overview
from skinseg.cli._segment import add_segment_options, read_input, segment_with_bar, write_result
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.measure.report import headline, write_report
from skinseg.measure.thickness import measure_epidermis

SAMPLE_SHAPE = (64, 256, 256)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="segment an OCT image and measure epidermal thickness: labels, tables, PNGs")
    p.add_argument("input", nargs="?", help="OCT file or folder of B-scans")
    p.add_argument("--sample", action="store_true", help="use the bundled OCT phantom instead of INPUT")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--refractive-index", type=float, default=1.0,
                   help="divide the axial pixel size by it: 1.0 if already physical, ~1.4 for optical path length")
    p.add_argument("--normal-correction", action="store_true", help="thickness along the local surface normal")
    add_segment_options(p)
    p.set_defaults(func=run)


def _sample(out: Path) -> tuple[ImageData, np.ndarray]:
    from skinseg.synth.oct import oct_phantom

    phantom = oct_phantom(SAMPLE_SHAPE, seed=0)
    image, _ = phantom.to_image_data()
    image.source = str(io.write_image(out / "image.ome.tif", phantom.image, pixel_size_um=image.pixel_size_um))
    print(f"sample: OCT phantom {SAMPLE_SHAPE} written to {image.source}")
    return image, phantom.thickness_um


def run(args: argparse.Namespace) -> int:
    if args.sample == bool(args.input):
        raise SkinsegInputError("give either an INPUT file/folder or --sample, not both or neither.")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    image, truth = _sample(out) if args.sample else (read_input(args), None)
    result = segment_with_bar(image, args)
    labels_path = write_result(out / "labels.ome.tif", result, image)
    labels = ImageData(result.labels, result.pixel_size_um, source=str(labels_path))
    m = measure_epidermis(labels, refractive_index=args.refractive_index, normal_correction=args.normal_correction)
    written = {"labels": labels_path, **write_report(m, out)}
    written["overview"] = overview(out / "overview.png", image, labels, m)
    print(headline(m.summary))
    if truth is not None:
        print(f"sample truth: mean thickness {np.mean(truth) / args.refractive_index:.1f} µm")
    for path in written.values():
        print(path)
    image_path = image.source if Path(image.source).exists() else "IMAGE"
    print(f"open in napari: napari {image_path} {labels_path}")
    return 0
