"""Widget: set the physical pixel size (µm) of a layer whose file did not record it."""

from __future__ import annotations

import napari
from magicgui import magic_factory


def set_pixel_size(
    viewer: napari.viewer.Viewer,
    layer: napari.layers.Layer,
    bscan_spacing_um: float,
    axial_um: float,
    lateral_um: float,
    same_shape_layers: bool = True,
) -> None:
    """Give ``layer`` (and optionally every layer of its shape) a µm scale.

    3D layers get (B-scan spacing, axial, lateral); 2D layers (axial, lateral).
    """
    if min(bscan_spacing_um, axial_um, lateral_um) <= 0:
        raise ValueError("Pixel sizes must be positive µm values.")
    targets = [layer]
    if same_shape_layers:
        shape = _spatial_shape(layer)
        targets += [other for other in viewer.layers if other is not layer and _spatial_shape(other) == shape]
    for target in targets:
        ndim = target.ndim
        scale = (bscan_spacing_um, axial_um, lateral_um)[-ndim:] if ndim <= 3 else None
        if scale is None:
            continue
        target.scale = scale
        target.units = ("µm",) * ndim
        target.metadata = {**target.metadata, "pixel_size_um": tuple(scale), "pixel_size_known": True}
    viewer.reset_view()


def _spatial_shape(layer: napari.layers.Layer) -> tuple[int, ...] | None:
    data = getattr(layer, "data", None)
    if data is None or not hasattr(data, "shape"):
        return None
    return tuple(data.shape[: layer.ndim])


@magic_factory(
    call_button="Apply",
    bscan_spacing_um={"label": "B-scan spacing (µm)", "min": 1e-4, "max": 1e5, "step": 0.1},
    axial_um={"label": "Axial / row (µm)", "min": 1e-4, "max": 1e5, "step": 0.1},
    lateral_um={"label": "Lateral / column (µm)", "min": 1e-4, "max": 1e5, "step": 0.1},
    same_shape_layers={"label": "Also layers of the same shape"},
)
def pixel_size_widget(
    viewer: napari.viewer.Viewer,
    layer: napari.layers.Layer,
    bscan_spacing_um: float = 1.0,
    axial_um: float = 1.0,
    lateral_um: float = 1.0,
    same_shape_layers: bool = True,
) -> None:
    """Set pixel size (µm) of a layer."""
    set_pixel_size(viewer, layer, bscan_spacing_um, axial_um, lateral_um, same_shape_layers)
