"""Sample data (File ▸ Open Sample ▸ napari-skinseg): phantoms with ground truth, µm scale."""

from __future__ import annotations

from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.synth.biopsy import biopsy_phantom
from skinseg.synth.oct import oct_phantom
from skinseg._napari._layers import LayerDataTuple, image_layer, labels_layer, points_layer

OCT_SAMPLE_SHAPE = (64, 256, 256)


def oct_sample() -> list[LayerDataTuple]:
    """OCT skin phantom tomogram and its true layers."""
    phantom = oct_phantom(OCT_SAMPLE_SHAPE, seed=0)
    image, _ = phantom.to_image_data()
    return [
        image_layer(image, "OCT phantom", colormap="gray"),
        labels_layer(phantom.labels, image.pixel_size_um, OCT_CLASSES, "OCT phantom true layers", opacity=0.4),
    ]


def _biopsy_layers(stain: str) -> list[LayerDataTuple]:
    phantom = biopsy_phantom(seed=0, stain=stain)
    image = phantom.to_image_data()
    scale = image.pixel_size_um
    return [
        image_layer(image, f"biopsy phantom ({stain})"),
        labels_layer(phantom.tissue, scale, TISSUE_CLASSES, "true tissue", opacity=0.3, visible=False),
        labels_layer(phantom.nerves, scale, NERVE_CLASSES, "true nerves", opacity=0.7, visible=False),
        points_layer(
            phantom.crossings, scale, f"true crossings (n={phantom.count})",
            size=12, face_color="transparent", border_color="yellow", border_width=0.15,
        ),
    ]


def biopsy_sample() -> list[LayerDataTuple]:
    """Brightfield (DAB) skin-biopsy phantom with true tissue, nerves and crossings."""
    return _biopsy_layers("dab")


def biopsy_fluorescent_sample() -> list[LayerDataTuple]:
    """Fluorescent skin-biopsy phantom with true tissue, nerves and crossings."""
    return _biopsy_layers("fluorescent")
