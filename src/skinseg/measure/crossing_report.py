"""Files of a nerve-crossing count: ``crossings.csv``, ``summary.csv`` and ``overlay.png``.

Shared by ``skinseg crossings`` and the "Count nerve crossings" widget, so both write the
same columns: crossings in px and µm; the count (after any edits) with IENFD per mm of
epidermal surface and of DEJ, both lengths, the pixel size and every parameter.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from skinseg import io
from skinseg.classes import NERVE_CLASSES, ClassTable, LabelClass
from skinseg.figures import overview_png
from skinseg.io.image_data import ImageData
from skinseg.measure.crossings import CrossingResult, crossing_density

__all__ = ["OVERLAY_CLASSES", "crossing_rows", "headline", "overlay", "summary_row", "write_tables"]

OVERLAY_CLASSES = ClassTable(
    "crossings overlay",
    (
        LabelClass(0, "background", "#000000"),
        LabelClass(1, "nerve", NERVE_CLASSES.classes[1].color),
        LabelClass(2, "boundary band", "#00e5ff"),
    ),
)
"""Display-only table of ``overlay.png``: nerves over the boundary band."""


def crossing_rows(points_px: np.ndarray, pixel_size_um: float) -> dict[str, np.ndarray]:
    """``crossings.csv`` columns: ``row``, ``col`` (px centres) and ``y_um``, ``x_um``."""
    pts = np.asarray(points_px, dtype=float).reshape(-1, 2)
    return {"row": pts[:, 0], "col": pts[:, 1], "y_um": pts[:, 0] * pixel_size_um, "x_um": pts[:, 1] * pixel_size_um}


def summary_row(result: CrossingResult, count: int, **extra: Any) -> dict[str, Any]:
    """``summary.csv``: ``count`` crossings (after edits) over the lengths of ``result``."""
    return {
        "count": int(count),
        "ienfd_per_mm": crossing_density(count, result.surface_length_mm),
        "ienfd_per_mm_dej": crossing_density(count, result.dej_length_mm),
        "dej_length_mm": result.dej_length_mm,
        "epidermis_length_mm": result.surface_length_mm,
        "pixel_size_um": result.pixel_size_um,
        **extra,
        **asdict(result.params),
    }


def write_tables(out_dir: str | Path, points_px: np.ndarray, result: CrossingResult, **extra: Any) -> dict[str, Path]:
    """Write ``crossings.csv`` and ``summary.csv`` for ``points_px`` (edited or not)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "crossings": io.write_table_csv(out / "crossings.csv", crossing_rows(points_px, result.pixel_size_um)),
        "summary": io.write_table_csv(out / "summary.csv", [summary_row(result, len(points_px), **extra)]),
    }


def headline(result: CrossingResult) -> str:
    """One line: the count and both densities."""
    return (
        f"{result.count} crossings: {result.ienfd_per_mm:.2f} /mm of epidermal surface "
        f"({result.surface_length_mm:.3f} mm), {result.ienfd_per_mm_dej:.2f} /mm of DEJ ({result.dej_length_mm:.3f} mm)"
    )


def overlay(path: Path, image: ImageData, nerves: np.ndarray, crossings: CrossingResult) -> Path:
    """The image with the boundary band, the nerves and the crossings drawn over it."""
    marks = np.where(nerves > 0, 1, np.where(crossings.boundary, 2, 0)).astype(np.uint8)
    return overview_png(
        path, np.asarray(image.data), pixel_size_um=tuple(image.pixel_size_um), labels=marks,
        table=OVERLAY_CLASSES, points={"crossings": crossings.points},
        title=f"{Path(image.source).name}: {headline(crossings)}",
    )  # fmt: skip
