"""The one thing every reader returns: an array with its pixel size in µm."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNKNOWN_PIXEL_SIZE_WARNING = (
    "{source}: pixel size not recorded in the file; using 1.0 µm per pixel. "
    "Set the real pixel size (µm) before measuring."
)


@dataclass
class ImageData:
    """An image or labels array and what it means physically.

    Attributes
    ----------
    data
        Array-like: numpy array, memory map, or dask/zarr array (lazy reads).
        OCT: ``(n_bscans, depth, width)`` or ``(depth, width)``;
        RGB images: ``(height, width, 3)``.
    pixel_size_um
        µm per pixel for each *spatial* axis (the RGB channel axis has none).
    pixel_size_known
        False when the file did not record a pixel size and 1.0 was assumed.
    rgb
        True when the last axis holds RGB channels.
    source
        File or folder it came from (for messages).
    metadata
        Anything else worth keeping (class table, OME fields, vendor header ...).
    """

    data: Any
    pixel_size_um: tuple[float, ...]
    pixel_size_known: bool = True
    rgb: bool = False
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pixel_size_um = tuple(float(p) for p in self.pixel_size_um)
        if len(self.pixel_size_um) != self.spatial_ndim:
            raise ValueError(
                f"{self.source or 'image'}: {len(self.pixel_size_um)} pixel sizes given "
                f"for {self.spatial_ndim} spatial axes of shape {tuple(self.data.shape)}"
            )
        if any(not np.isfinite(p) or p <= 0 for p in self.pixel_size_um):
            raise ValueError(
                f"{self.source or 'image'}: pixel size must be positive µm, got {self.pixel_size_um}"
            )

    @property
    def spatial_ndim(self) -> int:
        return len(self.data.shape) - (1 if self.rgb else 0)

    @classmethod
    def with_unknown_pixel_size(cls, data: Any, *, rgb: bool = False, source: str = "", **kw: Any) -> ImageData:
        """Wrap ``data`` with 1.0 µm pixels and warn that the real size is unknown."""
        warnings.warn(UNKNOWN_PIXEL_SIZE_WARNING.format(source=source or "image"), stacklevel=2)
        ndim = len(data.shape) - (1 if rgb else 0)
        return cls(data, (1.0,) * ndim, pixel_size_known=False, rgb=rgb, source=source, **kw)
