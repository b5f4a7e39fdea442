"""GUI-free logic of the "Measure epidermis" widget: inputs, live updates, output layers.

Everything here works on napari layer and viewer models only (no Qt), so tests and
scripts can drive it without a window; :mod:`skinseg._napari._measure_widget` adds the
controls, the thread worker, the debounce timer and the histogram.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.utils.colormaps import Colormap

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.measure.report import COLORMAP, colour_range, write_report
from skinseg.measure.surfaces import depth_map_mesh
from skinseg.measure.thickness import EpidermisMeasurement, measure_epidermis
from skinseg._napari._layers import LayerDataTuple

MAP_LAYER = "epidermal thickness (µm)"
SURFACE_LAYERS = {"skin surface": "stratum corneum", "DEJ": "DEJ"}
"""Surface layer name → OCT class whose colour it takes."""
MAP_GAP = 0.05
"""Gap between the labels and the thickness map beside them, as a fraction of the labels' width."""


@dataclass(frozen=True)
class LabelsInput:
    """What is measured: a labels layer's array, its µm pixel size and placement."""

    layer: napari.layers.Labels
    pixel_size_um: tuple[float, ...]
    pixel_size_known: bool

    @property
    def name(self) -> str:
        return f"labels layer '{self.layer.name}'"

    def measure(self, refractive_index: float, normal_correction: bool) -> EpidermisMeasurement:
        """Measure the whole layer (safe to call from a worker thread)."""
        return measure_epidermis(
            self.layer.data, self.pixel_size_um, refractive_index=refractive_index,
            normal_correction=normal_correction, source=self.name,
        )  # fmt: skip


def labels_input(
    labels: napari.layers.Labels | None, image: napari.layers.Image | None = None
) -> LabelsInput:
    """Check the chosen layers; pixel size is the labels' scale, else the image's.

    The image (optional) must have the labels' shape; its scale is used when the labels'
    scale was never set (all 1.0) and the image's was.

    Raises
    ------
    SkinsegInputError
        No labels layer, labels not a B-scan or tomogram, or an image of another shape.
    """
    if labels is None:
        raise SkinsegInputError("Choose the OCT labels layer to measure (add or paint one first).")
    shape = tuple(labels.data.shape)
    if len(shape) not in (2, 3) or labels.multiscale:
        raise SkinsegInputError(
            f"labels layer '{labels.name}': need a B-scan (depth, width) or a tomogram "
            f"(n_bscans, depth, width); got shape {shape}"
        )
    scale = tuple(float(s) for s in labels.scale)
    known = labels.metadata.get("pixel_size_known", not np.allclose(scale, 1.0))
    if image is not None:
        if image.rgb or tuple(image.data.shape) != shape:
            raise SkinsegInputError(
                f"image layer '{image.name}' of shape {tuple(image.data.shape)} does not match "
                f"labels layer '{labels.name}' of shape {shape}; choose the image the labels belong to."
            )
        if not known and not np.allclose(image.scale, 1.0):
            scale, known = tuple(float(s) for s in image.scale), True
    return LabelsInput(labels, scale, bool(known))


def touched_bscans(history_item: Iterable[Any], shape: tuple[int, ...]) -> set[int]:
    """B-scans touched by one napari ``Labels.events.paint`` value (a list of edit atoms).

    An atom is either a masked edit with a ``slice_key`` (brush, fill, polygon) or a
    ``(indices, old_values, new_values)`` tuple (``data_setitem``). ``shape`` is the
    labels' shape; a 2-D layer has one B-scan, 0.
    """
    if len(shape) == 2:
        return {0}
    touched: set[int] = set()
    for atom in history_item:
        key = getattr(atom, "slice_key", None)
        if key is None:
            touched.update(np.unique(np.asarray(atom[0][0])).tolist())
        elif isinstance(key[0], slice):
            touched.update(range(*key[0].indices(shape[0])))
        else:
            touched.add(int(key[0]))
    return touched


def map_layer(m: EpidermisMeasurement, inp: LabelsInput, clim: tuple[float, float]) -> LayerDataTuple:
    """Thickness map Image layer: µm scale, colour range ``clim``, beside the labels' top right."""
    width_um = inp.layer.data.shape[-1] * inp.pixel_size_um[-1]
    translate = np.array(inp.layer.translate[-2:], dtype=float)
    translate[1] += width_um * (1 + MAP_GAP)
    kwargs = {
        "name": MAP_LAYER,
        "scale": m.map_pixel_size_um,
        "translate": tuple(translate),
        "units": ("µm", "µm"),
        "axis_labels": ("B-scan", "width"),
        "colormap": COLORMAP,
        "contrast_limits": clim,
        "interpolation2d": "nearest",
        "metadata": {"source": inp.name, "colour_range_um": clim, "summary": m.summary},
    }
    return m.thickness_um, kwargs, "image"


def surface_layers(m: EpidermisMeasurement, inp: LabelsInput) -> list[LayerDataTuple]:
    """Skin surface and DEJ meshes in the labels' world coordinates (3-D labels only)."""
    if inp.layer.ndim != 3:
        return []
    colours = OCT_CLASSES.colors_rgba()
    tuples = []
    for name, depth_px in zip(SURFACE_LAYERS, (m.surface_px, m.dej_px)):
        vertices, faces = depth_map_mesh(depth_px)
        colour = colours[OCT_CLASSES.value_of(SURFACE_LAYERS[name])]
        kwargs = {
            "name": name,
            "scale": inp.pixel_size_um,
            "translate": tuple(inp.layer.translate),
            "units": ("µm",) * 3,
            "colormap": Colormap([colour, colour], name=f"skinseg {name}"),
            "contrast_limits": (0.0, 1.0),
            "shading": "smooth",
            "metadata": {"source": inp.name},
        }
        tuples.append(((vertices, faces, np.ones(len(vertices), np.float32)), kwargs, "surface"))
    return tuples


def put_layer(viewer: napari.Viewer, data_tuple: LayerDataTuple) -> napari.layers.Layer:
    """Add the layer, or update the data and placement of the one of that name and type."""
    data, kwargs, kind = data_tuple
    name = kwargs["name"]
    if name in viewer.layers and isinstance(viewer.layers[name], getattr(napari.layers, kind.capitalize())):
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata = kwargs.get("metadata", layer.metadata)
        for key in ("scale", "translate", "contrast_limits"):  # each change refreshes: only if needed
            if key in kwargs and not np.allclose(getattr(layer, key), kwargs[key]):
                setattr(layer, key, kwargs[key])
        return layer
    return getattr(viewer, f"add_{kind}")(data, **kwargs)


@dataclass
class MeasureSession:
    """A measured labels layer: the measurement and its output layers, kept up to date.

    Attributes
    ----------
    inp
        The measured layer and pixel size.
    measurement
        The library result; :meth:`update` re-measures touched B-scans in place.
    clim
        Colour range of the map in µm, fixed at the first measurement so colours stay
        comparable while editing.
    """

    inp: LabelsInput
    measurement: EpidermisMeasurement
    clim: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.clim = colour_range(self.measurement.thickness_um)

    def update(self, bscans: Iterable[int]) -> None:
        """Re-measure only ``bscans`` of the (edited) labels layer."""
        n_bscans = self.measurement.surface_px.shape[0]
        rows = [b for b in bscans if 0 <= b < n_bscans]
        self.measurement.update(self.inp.layer.data, rows)

    def show(self, viewer: napari.Viewer) -> list[napari.layers.Layer]:
        """Add or update the thickness map and (3-D) the surface layers."""
        tuples = [map_layer(self.measurement, self.inp, self.clim), *surface_layers(self.measurement, self.inp)]
        return [put_layer(viewer, t) for t in tuples]

    def export(self, out_dir: str | Path, *, per_ascan: bool = False) -> dict[str, Path]:
        """Write the CSV tables, JSON and ``thickness.png`` into ``out_dir``."""
        return write_report(self.measurement, out_dir, per_ascan=per_ascan)

