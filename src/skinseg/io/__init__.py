"""Readers and writers: arrays with their physical pixel size (µm) and metadata."""

from skinseg.io.image_data import ImageData
from skinseg.io.labels import is_labels_file, read_labels, write_labels
from skinseg.io.oct import claims_oct, read_oct
from skinseg.io.ome import write_image
from skinseg.io.rgb import claims_rgb, read_rgb
from skinseg.io.tables import write_table_csv

__all__ = [
    "ImageData",
    "claims_oct",
    "claims_rgb",
    "is_labels_file",
    "read_labels",
    "read_oct",
    "read_rgb",
    "write_image",
    "write_labels",
    "write_table_csv",
]
