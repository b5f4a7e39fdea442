"""Write phantoms to disk with their ground truth (``skinseg phantom``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.figures import overview_png
from skinseg.io import write_image, write_labels, write_table_csv
from skinseg.synth.biopsy import biopsy_phantom
from skinseg.synth.oct import oct_phantom


def write_oct_phantom(out: Path, *, shape: tuple[int, ...] = (64, 256, 256), seed: int = 0,
                      glass: bool = False, gel: bool = False) -> list[Path]:
    """Write ``image.ome.tif``, ``labels.ome.tif``, ``truth.csv`` and ``overview.png`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    phantom = oct_phantom(shape, seed=seed, glass=glass, gel=gel)
    image, _ = phantom.to_image_data()
    surface = np.atleast_2d(phantom.surface_depth)
    dej = np.atleast_2d(phantom.dej_depth)
    thickness = np.atleast_2d(phantom.thickness_um)
    bscan, col = np.indices(surface.shape)
    truth = {
        "bscan": bscan.ravel(), "column": col.ravel(),
        "surface_px": surface.ravel(), "dej_px": dej.ravel(), "thickness_um": thickness.ravel(),
    }
    middle = surface.shape[0] // 2
    pick = (lambda a: a[middle]) if phantom.image.ndim == 3 else (lambda a: a)
    return [
        write_image(out / "image.ome.tif", phantom.image, pixel_size_um=image.pixel_size_um),
        write_labels(out / "labels.ome.tif", phantom.labels, pixel_size_um=image.pixel_size_um,
                     class_table=OCT_CLASSES, metadata={"phantom_seed": seed}),
        write_table_csv(out / "truth.csv", truth),
        overview_png(out / "overview.png", pick(phantom.image), pixel_size_um=image.pixel_size_um[-2:],
                     labels=pick(phantom.labels), table=OCT_CLASSES,
                     lines={"true surface": surface[middle], "true DEJ": dej[middle]},
                     title=f"OCT phantom (seed {seed}), B-scan {middle}: true layers"),
    ]


def write_biopsy_phantom(out: Path, *, seed: int = 0, stain: str = "dab") -> list[Path]:
    """Write image, tissue and nerve labels, ``crossings.csv`` and ``overview.png`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    phantom = biopsy_phantom(seed=seed, stain=stain)
    px = (phantom.pixel_size_um, phantom.pixel_size_um)
    rows, cols = phantom.crossings.T if phantom.count else (np.empty(0), np.empty(0))
    crossings = {"row": rows, "col": cols, "y_um": rows * px[0], "x_um": cols * px[1]}
    return [
        write_image(out / "image.ome.tif", phantom.image, pixel_size_um=px, rgb=True),
        write_labels(out / "tissue.ome.tif", phantom.tissue, pixel_size_um=px, class_table=TISSUE_CLASSES),
        write_labels(out / "nerves.ome.tif", phantom.nerves, pixel_size_um=px, class_table=NERVE_CLASSES),
        write_table_csv(out / "crossings.csv", crossings),
        overview_png(out / "overview.png", phantom.image, pixel_size_um=px, points={"true crossings": phantom.crossings},
                     title=f"biopsy phantom (seed {seed}, {stain}): {phantom.count} true crossings"),
    ]
