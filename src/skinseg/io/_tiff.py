"""TIFF helpers shared by the readers, and the unit/pixel-size helpers they all use.

Pixel sizes are looked up in this order: OME-XML ``PhysicalSize{X,Y,Z}`` (with units),
then ImageJ metadata (``spacing`` for Z, resolution tags in ImageJ's ``unit``), then the
plain TIFF ``XResolution``/``YResolution`` tags with ``ResolutionUnit``. Resolution tags
hold pixels per unit; 72 and 96 pixels per inch are screen defaults written by image
editors, not a microscope's pixel size, and count as unknown.
"""

from __future__ import annotations

import logging
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr

from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
LAZY_BYTES = 256 * 2**20
"""Pixel data larger than this (bytes) opens lazily: memory map or dask array."""

_UM_PER_UNIT = {
    1.0: ("µm", "μm", "um", "micron", "microns", "micrometer", "micrometre", "micrometers"),
    1e-3: ("nm", "nanometer", "nanometre", "nanometers"),
    1e-4: ("å", "angstrom", "ångström"),
    1e3: ("mm", "millimeter", "millimetre", "millimeters"),
    1e4: ("cm", "centimeter", "centimetre", "centimeters"),
    1e6: ("m", "meter", "metre", "meters"),
    25400.0: ("inch", "in", "inches"),
}
_UNIT_FACTOR = {name: factor for factor, names in _UM_PER_UNIT.items() for name in names}
_SCREEN_DPI = (72.0, 96.0)
_COLOUR = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
_TRUNCATION_SIGNS = ("invalid page offset", "failed to reshape", "corrupted")

PixelSizes = tuple[float | None, ...]
"""µm per pixel for each spatial axis; None where the file does not say."""


def um_per_unit(unit: str | None) -> float | None:
    """µm in one ``unit`` (µm, um, micron, nm, mm, cm, m, inch, ...); None if not a length."""
    if not unit:
        return None
    key = str(unit).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").lower()
    return _UNIT_FACTOR.get(key)


def size_from_density(pixels_per_unit: float | None, unit: str | None) -> float | None:
    """Pixel size in µm from a density in pixels per ``unit`` (TIFF/PNG resolution)."""
    factor = um_per_unit(unit)
    if factor is None or not pixels_per_unit or not np.isfinite(pixels_per_unit):
        return None
    if factor == 25400.0 and any(abs(pixels_per_unit - d) < 0.5 for d in _SCREEN_DPI):
        return None
    return factor / float(pixels_per_unit)


def as_pixel_sizes(value: float | Sequence[float], ndim: int, source: str) -> tuple[float, ...]:
    """Normalise a user-given pixel size (one number or one per spatial axis) to a tuple."""
    try:
        sizes = (float(value),) * ndim if np.isscalar(value) else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        sizes = ()
    if len(sizes) != ndim or not all(np.isfinite(s) and s > 0 for s in sizes):
        raise SkinsegInputError(
            f"{source}: pixel_size_um={value!r} does not fit {ndim} spatial axes; give one "
            f"positive number in µm, or {ndim} numbers (one per axis, in array order)."
        )
    return sizes


def pixel_sizes_differ(sizes: Sequence[float], reference: Sequence[float], tolerance: float) -> bool:
    """Whether ``sizes`` differ from ``reference`` by more than the factor ``tolerance`` on an axis."""
    ratio = np.asarray(sizes, dtype=float) / np.asarray(reference, dtype=float)
    return bool(np.any(np.maximum(ratio, 1 / ratio) > tolerance))


@contextmanager
def reading(path: str | Path, what: str, hint: str = "") -> Iterator[None]:
    """Turn any error from a third-party decoder into one clear :class:`SkinsegInputError`."""
    try:
        yield
    except SkinsegInputError:
        raise
    except Exception as e:  # noqa: BLE001 - a reader must never leak a decoder traceback
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        advice = hint or (
            "Check that the file is complete (not truncated by a copy) and that its "
            "extension matches its content."
        )
        raise SkinsegInputError(f"{path}: cannot be read as {what} ({detail}). {advice}") from e


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def open_tiff(path: str | Path) -> tifffile.TiffFile:
    """Open a TIFF and check it is complete; the caller closes it.

    Raises
    ------
    SkinsegInputError
        Not a TIFF, or truncated (pages or pixel data beyond the end of the file).
    """
    log = logging.getLogger("tifffile")
    handler = _Collect()
    log.addHandler(handler)
    tif = None
    try:
        with reading(path, "a TIFF file"):
            tif = tifffile.TiffFile(path)
            series = tif.series[0]
            size = tif.filehandle.size
            extents = (
                offset + count
                for page in series.pages
                if page is not None
                for offset, count in zip(page.dataoffsets, page.databytecounts)
            )
            end = max(extents, default=0)
        problems = [m for m in handler.messages if any(s in m for s in _TRUNCATION_SIGNS)]
        if end > size or problems:
            raise SkinsegInputError(
                f"{path}: the TIFF is truncated or damaged ("
                + (problems[0] if problems else f"pixel data run to byte {end}, file has {size}")
                + "). Copy or export the file again."
            )
        return tif
    except BaseException:
        if tif is not None:
            tif.close()
        raise
    finally:
        log.removeHandler(handler)


def is_rgb_series(tif: tifffile.TiffFile) -> bool:
    """True when the first series stores RGB(A) samples in its last axis."""
    series = tif.series[0]
    return (
        series.axes.endswith("S")
        and series.shape[-1] in (3, 4)
        and tif.pages[0].photometric in _COLOUR
    )


def tiff_array(path: str | Path, tif: tifffile.TiffFile) -> Any:
    """Pixels of the first series: in memory when small, else a memory map or dask array."""
    series = tif.series[0]
    with reading(path, "a TIFF file"):
        if series.size * series.dtype.itemsize <= LAZY_BYTES:
            return series.asarray()
        if series.dataoffset is not None:
            return tifffile.memmap(path, mode="r")
        store = tifffile.imread(path, aszarr=True)
        return da.from_zarr(zarr.open(store, mode="r"))


def ome_xml(tif: tifffile.TiffFile) -> ET.Element | None:
    """Parsed OME-XML of the file, or None when it has none."""
    if not tif.is_ome or not tif.ome_metadata:
        return None
    try:
        return ET.fromstring(tif.ome_metadata)
    except ET.ParseError as e:
        raise SkinsegInputError(
            f"{tif.filehandle.path}: its OME-XML metadata is damaged ({e}). Export the file again."
        ) from e


def _ome_pixels(tif: tifffile.TiffFile) -> dict[str, str]:
    root = ome_xml(tif)
    pixels = root.find("./{*}Image/{*}Pixels") if root is not None else None
    return dict(pixels.attrib) if pixels is not None else {}


def _ome_size(attrib: dict[str, str], axis: str) -> float | None:
    value = attrib.get(f"PhysicalSize{axis}")
    if value is None:
        return None
    factor = um_per_unit(attrib.get(f"PhysicalSize{axis}Unit", "µm"))
    return float(value) * factor if factor else None


def tiff_pixel_sizes(tif: tifffile.TiffFile, spatial_ndim: int) -> PixelSizes:
    """µm per pixel for the last ``spatial_ndim`` axes (Z→stack axis, Y→rows, X→columns)."""
    ome = _ome_pixels(tif)
    if ome:
        y, x, z = (_ome_size(ome, a) for a in "YXZ")
    else:
        page = tif.pages[0]
        ij = tif.imagej_metadata or {}
        unit = ij.get("unit") if tif.is_imagej else page.resolutionunit.name.lower()
        xres, yres = page.get_resolution()
        x, y = size_from_density(xres, unit), size_from_density(yres, unit)
        spacing = ij.get("spacing")
        z = float(spacing) * um_per_unit(unit) if spacing and um_per_unit(unit) else None
    if spatial_ndim == 2:
        return y, x
    axes = tif.series[0].axes  # the stack axis has a Z size only if it is Z (not T or C)
    return (z if len(axes) >= 3 and axes[-3] in "ZIQ" else None), y, x


def samples_per_pixel(path: str | Path) -> int | None:
    """Samples per pixel of the first page (1 grey, 3 RGB, 4 RGBA); None if unreadable."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return page.samplesperpixel if page.photometric in _COLOUR else 1
    except Exception:  # noqa: BLE001 - a peek answers "not mine", never raises
        return None


def check_file(path: str | Path) -> Path:
    """The path as a :class:`Path`, after checking it is an existing, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise SkinsegInputError(f"{p}: no such file or folder. Check the path.")
    if p.is_file() and p.stat().st_size == 0:
        raise SkinsegInputError(
            f"{p}: the file is empty (0 bytes); it may not have finished copying or saving. "
            "Copy or export it again."
        )
    return p


def make_image_data(
    data: Any,
    sizes: PixelSizes,
    override: float | Sequence[float] | None,
    *,
    rgb: bool = False,
    source: str,
    metadata: dict[str, Any],
) -> ImageData:
    """Wrap pixels and the pixel sizes found; ``override`` wins, unknown axes get 1.0 µm.

    When no axis has a recorded size, :meth:`ImageData.with_unknown_pixel_size` warns.
    When only some have, the others get 1.0 µm with a warning naming them, and
    ``pixel_size_known`` is False.
    """
    ndim = len(data.shape) - (1 if rgb else 0)
    if override is not None:
        sizes = as_pixel_sizes(override, ndim, source)
        return ImageData(data, sizes, rgb=rgb, source=source, metadata=metadata)
    if all(s is None for s in sizes):
        return ImageData.with_unknown_pixel_size(data, rgb=rgb, source=source, metadata=metadata)
    missing = [i for i, s in enumerate(sizes) if s is None]
    if missing:
        warnings.warn(
            f"{source}: pixel size not recorded for axis {missing} of shape {tuple(data.shape)}; "
            "using 1.0 µm there. Set the real pixel size (µm) before measuring along it.",
            stacklevel=3,
        )
    filled = tuple(1.0 if s is None else s for s in sizes)
    return ImageData(
        data, filled, pixel_size_known=not missing, rgb=rgb, source=source, metadata=metadata
    )


def squeeze_leading(data: Any) -> Any:
    """Drop leading singleton axes (e.g. T=1, C=1) until at most three axes are left."""
    while len(data.shape) > 3 and data.shape[0] == 1:
        data = data[0]
    return data
