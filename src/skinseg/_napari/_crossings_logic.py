"""GUI-free logic of the "Count nerve crossings" widget: inputs, result layers, live count, export.

Everything here works on napari layer and viewer models (no window or Qt calls), so tests and
scripts can drive it without a window; :mod:`skinseg._napari._crossings_widget` adds the
controls and the thread worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.utils.colormaps import Colormap

from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.measure.crossing_report import OVERLAY_CLASSES, write_tables
from skinseg.errors import SkinsegInputError
from skinseg.measure.crossings import CrossingParams, CrossingResult, crossing_density, find_crossings
from skinseg.models.registry import BIOPSY_NERVES, BIOPSY_TISSUE
from skinseg.segment.biopsy import BiopsyAnalysis
from skinseg._napari._layers import LayerDataTuple, labels_layer, points_layer
from skinseg._napari._choices import model_list, unique_name

CLASSICAL_LABEL = "classical (no training)"
TASKS = {"tissue": BIOPSY_TISSUE, "nerves": BIOPSY_NERVES}
"""Widget input → model task whose models it lists."""
BAND_COLOUR = OVERLAY_CLASSES.colors_rgba()[OVERLAY_CLASSES.value_of("boundary band")]
POINT_STYLE = {"size": 20, "face_color": "transparent", "border_color": "yellow", "border_width": 0.15}


def method_choices(task: str) -> dict[str, Any]:
    """Drop-down label → method for ``segment_tissue``/``segment_nerves``: classical, then models."""
    return {CLASSICAL_LABEL: "classical", **model_list(task)}


def layer_pixel_size(layer: napari.layers.Layer | None) -> tuple[float, bool]:
    """µm per pixel of a 2-D image layer (its column scale) and whether it is known."""
    if layer is None:
        return 1.0, False
    scale = np.asarray(layer.scale[-2:], dtype=float)
    known = layer.metadata.get("pixel_size_known", not np.allclose(scale, 1.0))
    return float(scale[-1]), bool(known)


@dataclass(frozen=True)
class BiopsyInput:
    """What is analysed: an RGB image layer and the µm pixel size to use."""

    layer: napari.layers.Image
    pixel_size_um: float

    @property
    def name(self) -> str:
        return f"image layer '{self.layer.name}'"

    @property
    def scale(self) -> tuple[float, float]:
        return (self.pixel_size_um, self.pixel_size_um)

    @property
    def image(self) -> np.ndarray:
        return np.asarray(self.layer.data)


def biopsy_input(layer: napari.layers.Image | None, pixel_size_um: float) -> BiopsyInput:
    """Check the chosen layer and pixel size.

    Raises
    ------
    SkinsegInputError
        No layer, a layer that is not a 2-D RGB image, or a pixel size that is not > 0.
    """
    if layer is None:
        raise SkinsegInputError("Open or choose the RGB skin-biopsy image layer first.")
    shape = tuple(layer.data.shape)
    if not layer.rgb or layer.multiscale or len(shape) != 3 or shape[-1] != 3:
        kind = "RGBA" if layer.rgb and shape[-1] == 4 else f"shape {shape}"
        raise SkinsegInputError(
            f"image layer '{layer.name}' is not an RGB image ({kind}); nerve crossings need an RGB "
            "(height, width, 3) biopsy image: open the colour image, or save it without alpha."
        )
    if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise SkinsegInputError(
            f"image layer '{layer.name}': pixel size {pixel_size_um} µm is not valid; set the µm per pixel "
            "(e.g. 0.5 at 20×)."
        )
    return BiopsyInput(layer, float(pixel_size_um))


def boundary_layer(result: CrossingResult, name: str, **kwargs: Any) -> LayerDataTuple:
    """The boundary band as a translucent Image layer (display only, not edited)."""
    transparent = (*BAND_COLOUR[:3], 0.0)
    layer_kwargs = {
        "name": name, "scale": (result.pixel_size_um,) * 2, "units": ("µm", "µm"), "axis_labels": ("y", "x"),
        "colormap": Colormap([transparent, BAND_COLOUR], name="skinseg boundary band"),
        "contrast_limits": (0.0, 1.0), "opacity": 0.6, "blending": "translucent",
        "metadata": {"params": result.params},
    }  # fmt: skip
    return result.boundary.astype(np.uint8), {**layer_kwargs, **kwargs}, "image"


def crossing_points(result: CrossingResult, name: str, **kwargs: Any) -> LayerDataTuple:
    """Crossings as an editable Points layer (px coordinates at µm scale)."""
    return points_layer(result.points, (result.pixel_size_um,) * 2, name, **POINT_STYLE, **kwargs)


def result_layers(analysis: BiopsyAnalysis, inp: BiopsyInput, viewer: napari.Viewer) -> list[LayerDataTuple]:
    """Tissue and nerve Labels, boundary band and crossing Points, with new names, at µm scale."""
    base, where = inp.layer.name, {"translate": tuple(inp.layer.translate)}
    result = analysis.crossings
    return [
        labels_layer(analysis.tissue.labels, inp.scale, TISSUE_CLASSES, unique_name(viewer, f"{base} tissue"),
                     opacity=0.3, metadata_extra={"model": analysis.tissue.method}, **where),
        labels_layer(analysis.nerves.mask, inp.scale, NERVE_CLASSES, unique_name(viewer, f"{base} nerves"),
                     opacity=0.8, metadata_extra={"model": analysis.nerves.method}, **where),
        boundary_layer(result, unique_name(viewer, f"{base} boundary band"), **where),
        crossing_points(result, unique_name(viewer, f"{base} crossings"), **where),
    ]  # fmt: skip


@dataclass
class CrossingsSession:
    """A counted image: its layers and the latest crossing result; the count follows the points.

    Attributes
    ----------
    inp
        The analysed image layer and pixel size.
    result
        The latest :func:`find_crossings` result (lengths, parameters, boundary band).
    tissue, nerves, boundary, points
        The layers shown; the user edits ``tissue``, ``nerves`` and ``points``.
    methods
        Tissue and nerve methods used (recorded in the export).
    """

    inp: BiopsyInput
    result: CrossingResult
    tissue: napari.layers.Labels
    nerves: napari.layers.Labels
    boundary: napari.layers.Image
    points: napari.layers.Points
    methods: dict[str, str]

    @property
    def points_px(self) -> np.ndarray:
        """The crossings now in the Points layer (after the user's edits), ``(n, 2)`` px."""
        return np.asarray(self.points.data, dtype=float).reshape(-1, 2)

    @property
    def count(self) -> int:
        return len(self.points_px)

    def densities(self) -> tuple[float, float]:
        """IENFD per mm of epidermal surface and per mm of DEJ, for the current points."""
        return (
            crossing_density(self.count, self.result.surface_length_mm),
            crossing_density(self.count, self.result.dej_length_mm),
        )

    def summary_line(self) -> str:
        """Count, both densities and the lengths they use."""
        per_surface, per_dej = self.densities()
        r = self.result
        return (
            f"{self.count} crossings · IENFD {per_surface:.2f} /mm of epidermis "
            f"({r.surface_length_mm:.3f} mm) · {per_dej:.2f} /mm of DEJ ({r.dej_length_mm:.3f} mm)"
        )

    def edited_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the (edited) tissue labels and nerve mask, taken in the GUI thread.

        Raises
        ------
        SkinsegInputError
            A layer whose data no longer has the image's height and width.
        """
        for layer in (self.tissue, self.nerves):
            if tuple(layer.data.shape) != self.inp.image.shape[:2]:
                raise SkinsegInputError(
                    f"labels layer '{layer.name}' has shape {tuple(layer.data.shape)}, not the image's "
                    f"{self.inp.image.shape[:2]}; count the image again."
                )
        return np.array(self.tissue.data), np.asarray(self.nerves.data) > 0

    def recount(self, masks: tuple[np.ndarray, np.ndarray], params: CrossingParams) -> CrossingResult:
        """Only the crossing step, on :meth:`edited_masks` (safe in a worker thread)."""
        return find_crossings(*masks, self.inp.pixel_size_um, params)

    def show(self, result: CrossingResult) -> None:
        """Put a new crossing result in the boundary and Points layers."""
        self.result = result
        self.boundary.data = result.boundary.astype(np.uint8)
        self.boundary.metadata = {**self.boundary.metadata, "params": result.params}
        self.points.data = crossing_points(result, self.points.name)[0]

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``crossings.csv`` (the points as edited) and ``summary.csv`` into ``out_dir``."""
        return write_tables(out_dir, self.points_px, self.result, source=self.inp.name, **self.methods)
