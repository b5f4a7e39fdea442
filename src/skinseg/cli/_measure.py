"""``skinseg measure LABELS -o DIR``: epidermal thickness and DEJ shape in µm from OCT labels."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skinseg import io
from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.figures import overview_png
from skinseg.io.image_data import ImageData
from skinseg.measure.report import headline, write_report
from skinseg.measure.thickness import EpidermisMeasurement, measure_epidermis


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure",
        help="epidermal thickness and DEJ shape (µm) from OCT labels: tables, JSON and thickness.png",
    )
    p.add_argument("labels", help="OCT labels OME-TIFF (as written by skinseg or its napari writer)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--image", help="the OCT image the labels belong to: adds overview.png (middle B-scan)")
    p.add_argument(
        "--refractive-index", type=float, default=1.0,
        help="axial pixel size is divided by it: 1.0 (default) if already physical, ~1.4 for optical path length",
    )  # fmt: skip
    p.add_argument("--normal-correction", action="store_true", help="thickness along the local surface normal")
    p.add_argument("--per-ascan", action="store_true", help="also write per_ascan.csv (one row per A-scan)")
    p.set_defaults(func=run)


def read_oct_labels(path: str) -> ImageData:
    """Labels file → ImageData, refusing files whose class table is not the OCT layers'."""
    labels = io.read_labels(path)
    table = labels.metadata.get("class_table")
    if table is not None and table != OCT_CLASSES:
        raise SkinsegInputError(
            f"{path}: holds {table.name!r} labels ({', '.join(table.names)}), not OCT skin layers; "
            "measure labels segmented or painted with the OCT classes."
        )
    return labels


def _read_image(path: str, labels: ImageData) -> ImageData:
    image = io.read_oct(path)
    if tuple(image.data.shape) != tuple(labels.data.shape):
        raise SkinsegInputError(
            f"{path}: image of shape {tuple(image.data.shape)} does not match labels "
            f"{labels.source} of shape {tuple(labels.data.shape)}; pass the image the labels were made from."
        )
    return image


def overview(path: Path, image: ImageData, labels: ImageData, m: EpidermisMeasurement) -> Path:
    """The middle B-scan with the labels and the measured surface and DEJ drawn over it."""
    k = m.surface_px.shape[0] // 2
    volume = image.data.ndim == 3
    return overview_png(
        path,
        np.asarray(image.data[k] if volume else image.data),
        pixel_size_um=tuple(labels.pixel_size_um[-2:]),
        labels=np.asarray(labels.data[k] if volume else labels.data),
        table=OCT_CLASSES,
        lines={"skin surface": m.surface_px[k], "DEJ": m.dej_px[k]},
        title=f"{Path(labels.source).name}, B-scan {k}: measured skin surface and DEJ",
    )


def run(args: argparse.Namespace) -> int:
    labels = read_oct_labels(str(args.labels))
    image = _read_image(str(args.image), labels) if args.image else None
    if image is not None and image.pixel_size_known and not labels.pixel_size_known:
        print(f"pixel size from {args.image}: {' × '.join(f'{p:g}' for p in image.pixel_size_um)} µm")
        labels.pixel_size_um = image.pixel_size_um
    m = measure_epidermis(
        labels, refractive_index=args.refractive_index, normal_correction=args.normal_correction
    )
    written = write_report(m, args.output, per_ascan=args.per_ascan)
    if image is not None:
        written["overview"] = overview(Path(args.output) / "overview.png", image, labels, m)
    print(headline(m.summary))
    for path in written.values():
        print(path)
    return 0
