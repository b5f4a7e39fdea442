"""RGB images (biopsy slides, photographs), and the Pillow raster helpers ``read_oct`` shares.

TIFFs go through tifffile (memory-mapped when big); PNG, JPEG, BMP and PNM/PGM through
Pillow. Pillow reads 16-bit PNG and PGM B-scans as 32-bit integers; they come back as
``uint16`` here. (Pillow reduces 16-bit *RGB* PNGs to 8 bits: save those as TIFF.)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import (
    TIFF_SUFFIXES,
    PixelSizes,
    check_file,
    is_rgb_series,
    make_image_data,
    open_tiff,
    reading,
    samples_per_pixel,
    size_from_density,
    tiff_array,
    tiff_pixel_sizes,
)
from skinseg.io.image_data import ImageData

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")
_MODE_DTYPE = {"1": np.uint8, "L": np.uint8, "LA": np.uint8, "F": np.float32, "I": np.int32}
_SIXTEEN_BIT_FORMATS = ("PNG", "PPM")


def _mode_dtype(mode: str, fmt: str | None) -> np.dtype:
    if mode.startswith("I;16") or (mode == "I" and fmt in _SIXTEEN_BIT_FORMATS):
        return np.dtype(np.uint16)
    return np.dtype(_MODE_DTYPE.get(mode, np.uint8))


class RasterHeader(NamedTuple):
    """What a Pillow-readable file's header says, before decoding."""

    shape: tuple[int, int]
    """``(height, width)``."""
    dtype: np.dtype
    """Type of each sample once decoded by :func:`read_raster`."""
    colour: bool
    """True for colour modes (RGB, RGBA, palette, CMYK, ...)."""
    pixel_size_um: PixelSizes
    """``(rows, columns)`` from a PNG ``pHYs`` chunk; None when absent. JPEG/BMP dpi is
    a print setting, never a physical size, and is ignored."""


def raster_header(path: str | Path) -> RasterHeader:
    """Peek at a Pillow-readable image without decoding its pixels."""
    with reading(path, "an image"), Image.open(path) as im:
        dpi = im.info.get("dpi") if im.format == "PNG" else None
        sizes = (None, None)
        if dpi:
            sizes = (size_from_density(dpi[1], "inch"), size_from_density(dpi[0], "inch"))
        colour = im.mode in _COLOUR_MODES
        return RasterHeader((im.height, im.width), _mode_dtype(im.mode, im.format), colour, sizes)


def read_raster(path: str | Path) -> np.ndarray:
    """Decode a Pillow-readable image: ``(H, W)`` grey, or ``(H, W, C)`` with C in 2, 3, 4.

    Palette, CMYK and other colour modes become RGB (RGBA when the palette has
    transparency); 1-bit images become ``uint8`` 0/255.
    """
    with reading(path, "an image"), Image.open(path) as im:
        dtype = _mode_dtype(im.mode, im.format)
        if im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("P", "PA"):
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        elif im.mode in _COLOUR_MODES and im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGB")
        return np.asarray(im).astype(dtype, copy=False)


def drop_alpha(arr: np.ndarray, path: str | Path) -> np.ndarray:
    """Remove a fully opaque alpha channel (with a warning); refuse transparent pixels.

    ``(H, W, 2)`` grey+alpha becomes ``(H, W)``; ``(H, W, 4)`` becomes ``(H, W, 3)``.
    """
    if arr.ndim != 3 or arr.shape[-1] not in (2, 4):
        return arr
    alpha = np.asarray(arr[..., -1])
    opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
    transparent = int(np.count_nonzero(alpha != opaque))
    if transparent:
        raise SkinsegInputError(
            f"{path}: {transparent} of {alpha.size} pixels are transparent (alpha channel). "
            "Flatten the image onto a background, or save it without transparency, and open "
            "it again."
        )
    warnings.warn(f"{path}: alpha channel is fully opaque; it was dropped.", stacklevel=3)
    rest = arr[..., :-1]
    return rest[..., 0] if rest.shape[-1] == 1 else rest


def _refuse_grey(path: Path, shape: tuple[int, ...]) -> SkinsegInputError:
    return SkinsegInputError(
        f"{path}: is not an RGB image (shape {shape}). Open grey images and OCT B-scans "
        "or tomograms with read_oct."
    )


def _read_rgb_tiff(path: Path) -> tuple[np.ndarray, PixelSizes, str]:
    tif = open_tiff(path)
    try:
        shape = tuple(tif.series[0].shape)
        if not is_rgb_series(tif):
            raise _refuse_grey(path, shape)
        if len(shape) != 3:
            raise SkinsegInputError(
                f"{path}: holds {shape[0]} RGB images (shape {shape}); read_rgb reads one. "
                "Save each image to its own file."
            )
        fmt = "ome-tiff" if tif.is_ome else "tiff"
        return tiff_array(path, tif), tiff_pixel_sizes(tif, 2), fmt
    finally:
        tif.close()


def read_rgb(
    path: str | Path, *, pixel_size_um: float | Sequence[float] | None = None
) -> ImageData:
    """Read an RGB image (skin biopsy, photograph) as ``(height, width, 3)``.

    Parameters
    ----------
    path
        RGB TIFF/OME-TIFF (memory-mapped when big), PNG, JPEG or BMP.
    pixel_size_um
        µm per pixel: one number or ``(rows, columns)``; overrides the file.

    Returns
    -------
    ImageData with ``rgb=True``; ``uint8`` (``uint16`` TIFFs stay ``uint16``).
    Pixel size from OME/TIFF resolution tags or a PNG ``pHYs`` chunk, else unknown.

    Raises
    ------
    SkinsegInputError
        Unreadable file, a grey image (use ``read_oct``), transparent pixels, or an
        unsupported sample type.
    """
    p = check_file(path)
    name = p.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        data, sizes, fmt = _read_rgb_tiff(p)
    elif name.endswith(RASTER_SUFFIXES):
        data, sizes = read_raster(p), raster_header(p).pixel_size_um
        fmt = p.suffix.lower().lstrip(".")
    else:
        what = "a folder" if p.is_dir() else f"a '{p.suffix}' file"
        raise SkinsegInputError(f"{p}: is {what}; read_rgb reads one TIFF, PNG, JPEG or BMP image.")
    data = drop_alpha(data, p)
    if data.ndim != 3 or data.shape[-1] != 3:
        raise _refuse_grey(p, tuple(data.shape))
    if data.dtype not in (np.uint8, np.uint16):
        raise SkinsegInputError(
            f"{p}: RGB samples are {data.dtype}; read_rgb reads 8- or 16-bit unsigned RGB. "
            "Convert the image to 8-bit RGB and open it again."
        )
    meta = {"format": fmt}
    return make_image_data(data, sizes, pixel_size_um, rgb=True, source=str(p), metadata=meta)


def claims_rgb(path: str | Path) -> bool:
    """Cheap check (extension and header only): is this a colour image ``read_rgb`` reads?"""
    p = Path(path)
    if not p.is_file():
        return False
    name = p.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return samples_per_pixel(p) in (3, 4)
    if name.endswith(RASTER_SUFFIXES):
        try:
            return raster_header(p).colour
        except SkinsegInputError:
            return False
    return False
