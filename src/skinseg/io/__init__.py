"""Readers and writers: arrays with their physical pixel size (µm) and metadata."""

from skinseg.io.image_data import ImageData

__all__ = ["ImageData"]
