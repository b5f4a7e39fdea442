"""Read OCT tomograms ``(n_bscans, depth, width)`` and B-scans ``(depth, width)``.

Formats: TIFF / OME-TIFF / ImageJ TIFF, ``.npy``, zarr and OME-Zarr folders, single
B-scan images (PNG, PGM, JPEG, BMP), folders of B-scan images, and vendor files through
the optional ``oct-converter`` package. Pixel data over :data:`~skinseg.io._tiff.LAZY_BYTES`
open lazily (memory map or dask); ``.npy`` is always memory-mapped and zarr always dask.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

from skinseg.errors import SkinsegInputError
from skinseg.io import _tiff
from skinseg.io._tiff import (
    TIFF_SUFFIXES,
    PixelSizes,
    check_file,
    is_rgb_series,
    make_image_data,
    open_tiff,
    reading,
    samples_per_pixel,
    squeeze_leading,
    tiff_array,
    tiff_pixel_sizes,
    um_per_unit,
)
from skinseg.io.image_data import ImageData
from skinseg.io.labels import is_labels_file
from skinseg.io.rgb import RASTER_SUFFIXES, drop_alpha, raster_header, read_raster

BSCAN_SUFFIXES = TIFF_SUFFIXES + RASTER_SUFFIXES
VENDOR_READERS = {
    ".fds": ("FDS",),
    ".fda": ("FDA",),
    ".e2e": ("E2E",),
    ".img": ("IMG",),
    ".oct": ("BOCT", "POCT"),
    ".dcm": ("Dicom",),
}
"""File suffix → oct-converter reader classes, tried in order."""

_VENDOR_HINT = 'pip install "napari-skinseg[vendor]"'
_RGB_HINT = "Open colour images (biopsies, photographs) with read_rgb."

Read = tuple[Any, PixelSizes, dict[str, Any]]


def natural_key(path: Path) -> list[Any]:
    """Sort key that orders numbers by value: ``b2`` before ``b10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name.lower())]


def _grey(arr: np.ndarray, path: Path) -> np.ndarray:
    """A colour array whose channels are all equal, as grey; else refuse."""
    arr = drop_alpha(np.asarray(arr), path)
    if arr.ndim >= 3 and arr.shape[-1] == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., c]) for c in (1, 2)):
            raise SkinsegInputError(f"{path}: is a colour image, not an OCT B-scan. {_RGB_HINT}")
        arr = arr[..., 0]
    return arr


def _checked(data: Any, path: Path) -> Any:
    """Squeeze leading singleton axes to 3D, then check dimensions, type and NaN."""
    data = squeeze_leading(data)
    shape, dtype = tuple(data.shape), np.dtype(data.dtype)
    if len(shape) not in (2, 3) or 0 in shape:
        raise SkinsegInputError(
            f"{path}: has shape {shape}; read_oct needs a B-scan (depth, width) or a tomogram "
            "(n_bscans, depth, width). Save one volume (one time point, one channel) and open "
            "it again."
        )
    if dtype.kind not in "uif":
        what = {
            "b": "booleans (a mask? open it as labels)",
            "c": "complex numbers (save the magnitude)",
        }
        raise SkinsegInputError(
            f"{path}: holds {what.get(dtype.kind, f'{dtype} values')}; read_oct reads integer or "
            "float intensities. Convert the data to uint8, uint16 or float32."
        )
    if dtype.kind == "f" and data.size * dtype.itemsize <= _tiff.LAZY_BYTES:
        nan = int(np.count_nonzero(np.isnan(np.asarray(data))))
        if nan:
            raise SkinsegInputError(
                f"{path}: contains {nan} NaN values of {data.size}. Replace them (e.g. by 0) "
                "before saving, then open the file again."
            )
    return data


def _read_tiff(path: Path) -> Read:
    tif = open_tiff(path)
    try:
        data = tiff_array(path, tif)
        if is_rgb_series(tif):
            data = _grey(data, path)
        data = _checked(data, path)
        fmt = "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        return data, tiff_pixel_sizes(tif, data.ndim), {"format": fmt}
    finally:
        tif.close()


def _read_image(path: Path) -> Read:
    """One B-scan image file (TIFF or Pillow-readable) as grey."""
    if path.name.lower().endswith(TIFF_SUFFIXES):
        return _read_tiff(path)
    data = _checked(_grey(read_raster(path), path), path)
    return data, raster_header(path).pixel_size_um, {"format": path.suffix.lower().lstrip(".")}


def _load_image(path: Path) -> Any:
    return _read_image(path)[0]


def _bscan_header(path: Path) -> tuple[tuple[int, ...], np.dtype, PixelSizes]:
    """Shape, dtype and pixel size of a B-scan file, from its header only."""
    if path.name.lower().endswith(TIFF_SUFFIXES):
        tif = open_tiff(path)
        try:
            shape = tuple(tif.series[0].shape)[: -1 if is_rgb_series(tif) else None]
            return shape, tif.series[0].dtype, tiff_pixel_sizes(tif, 2)
        finally:
            tif.close()
    header = raster_header(path)
    return header.shape, header.dtype, header.pixel_size_um


def _bscan_files(folder: Path) -> list[Path]:
    files = [
        f for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.name.lower().endswith(BSCAN_SUFFIXES)
    ]
    return sorted(files, key=natural_key)


def _read_folder(folder: Path) -> Read:
    files = _bscan_files(folder)
    if not files:
        raise SkinsegInputError(
            f"{folder}: holds no B-scan images ({', '.join(BSCAN_SUFFIXES)}). "
            "Choose the folder that contains the B-scan files."
        )
    shape, dtype, sizes = _bscan_header(files[0])
    for f in files[1:]:
        f_shape, f_dtype, _ = _bscan_header(f)
        if (f_shape, f_dtype) != (shape, dtype):
            raise SkinsegInputError(
                f"{f}: B-scan is {f_shape} {f_dtype}, but {files[0].name} is {shape} {dtype}. "
                f"All B-scans in {folder} must have the same shape and type; move or fix the "
                "odd file."
            )
    if len(shape) != 2:
        raise SkinsegInputError(
            f"{files[0]}: is not a single B-scan (shape {shape}); a folder must hold 2D B-scans."
        )
    if len(files) * int(np.prod(shape)) * np.dtype(dtype).itemsize <= _tiff.LAZY_BYTES:
        data = np.stack([_load_image(f) for f in files])
    else:
        load = dask.delayed(_load_image, pure=True)
        data = da.stack([da.from_delayed(load(f), shape, dtype) for f in files])
    meta = {"format": "folder", "files": [f.name for f in files]}
    return _checked(data, folder), (None, *sizes), meta


def _scale(transforms: list[dict[str, Any]], ndim: int) -> np.ndarray:
    scale = np.ones(ndim)
    for t in transforms or []:
        if t.get("type") == "scale":
            scale *= np.asarray(t["scale"], dtype=float)
    return scale


def _read_ome_zarr(path: Path, group: zarr.Group, multiscales: list[dict[str, Any]]) -> Read:
    ms = multiscales[0]
    level = ms["datasets"][0]
    arr = group[level["path"]]
    scale = _scale(level.get("coordinateTransformations"), arr.ndim)
    scale *= _scale(ms.get("coordinateTransformations"), arr.ndim)
    axes = [a if isinstance(a, dict) else {"name": a} for a in ms.get("axes", "tczyx"[-arr.ndim :])]
    index, sizes = [], []
    for ax, n, s in zip(axes, arr.shape, scale):
        if ax.get("type", "space" if ax["name"] in "zyx" else "other") == "space":
            index.append(slice(None))
            factor = um_per_unit(ax.get("unit"))
            sizes.append(s * factor if factor else None)
        elif n == 1:
            index.append(0)
        else:
            raise SkinsegInputError(
                f"{path}: has {n} '{ax['name']}' entries (axes {[a['name'] for a in axes]}); "
                "read_oct reads one grey volume. Export a single channel and time point."
            )
    data = _checked(da.from_zarr(arr)[tuple(index)], path)
    return data, tuple(sizes)[-data.ndim :], {"format": "ome-zarr", "level_path": level["path"]}


def _read_zarr(path: Path) -> Read:
    with reading(path, "a zarr store"):
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            data = _checked(da.from_zarr(node), path)
            return data, (None,) * data.ndim, {"format": "zarr"}
        attrs = node.attrs.asdict()
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if multiscales:
            return _read_ome_zarr(path, node, multiscales)
        names = sorted(node.array_keys())
    raise SkinsegInputError(
        f"{path}: is a zarr group without OME-NGFF 'multiscales' metadata; it holds arrays "
        f"{names}. Open one array folder directly (e.g. {path / names[0] if names else path})."
    )


def _is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or any(
        (path / m).exists() for m in ("zarr.json", ".zarray", ".zgroup")
    )


def _read_vendor(path: Path) -> Read:
    try:
        readers = importlib.import_module("oct_converter.readers")
    except ImportError as e:
        raise SkinsegInputError(
            f"{path}: reading '{path.suffix}' files needs the optional oct-converter package. "
            f"Install it with: {_VENDOR_HINT}"
        ) from e
    names = VENDOR_READERS[path.suffix.lower()]
    errors = []
    for name in names:
        try:
            volume = getattr(readers, name)(str(path)).read_oct_volume()
            break
        except Exception as e:  # noqa: BLE001 - try the next reader, report all below
            errors.append(f"{name}: {type(e).__name__}: {e}")
    else:
        raise SkinsegInputError(
            f"{path}: oct-converter could not read it ({'; '.join(errors)}). Export the scan "
            "as TIFF from the device software."
        )
    volume = volume[0] if isinstance(volume, list) else volume
    data = _checked(np.asarray(volume.volume), path)
    spacing = getattr(volume, "pixel_spacing", None)  # (width, depth, B-scan) in mm
    sizes = (None,) * 3
    if spacing is not None and len(spacing) == 3:
        sizes = tuple(float(s) * 1000.0 for s in reversed(spacing))
    return data, sizes[-data.ndim :], {"format": f"vendor:{path.suffix.lower()}"}


def read_oct(
    path: str | Path, *, pixel_size_um: float | Sequence[float] | None = None
) -> ImageData:
    """Read an OCT tomogram or B-scan.

    Parameters
    ----------
    path
        A TIFF/OME-TIFF/ImageJ TIFF, ``.npy``, zarr or OME-Zarr folder, a B-scan image
        (PNG, PGM, JPEG, BMP), a folder of B-scan images (natural sort order), or a
        vendor file (``.fds .fda .e2e .img .oct .dcm``; needs ``oct-converter``).
    pixel_size_um
        µm per pixel: one number, or one per axis ``(bscan spacing, depth, width)``;
        overrides what the file says.

    Returns
    -------
    ImageData
        ``(n_bscans, depth, width)`` or ``(depth, width)``; lazy (memory map or dask)
        for big files. Unknown pixel sizes are 1.0 µm with a warning.

    Raises
    ------
    SkinsegInputError
        The file is missing, empty, truncated or of another kind; a colour image; not
        2D/3D; booleans, complex or NaN values; mismatched B-scans in a folder.
    """
    p = check_file(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        data, sizes, meta = _read_zarr(p) if _is_zarr(p) else _read_folder(p)
    elif suffix == ".npy":
        with reading(p, "a numpy .npy file"):
            data = np.load(p, mmap_mode="r", allow_pickle=False)
        data = _checked(data, p)
        sizes, meta = (None,) * data.ndim, {"format": "npy"}
    elif p.name.lower().endswith(BSCAN_SUFFIXES):
        data, sizes, meta = _read_image(p)
    elif suffix in VENDOR_READERS:
        data, sizes, meta = _read_vendor(p)
    else:
        raise SkinsegInputError(
            f"{p}: read_oct does not read '{suffix}' files. Use TIFF/OME-TIFF, .npy, zarr, "
            f"PNG/PGM B-scans, a folder of B-scans, or a vendor file ({' '.join(VENDOR_READERS)})."
        )
    return make_image_data(data, sizes, pixel_size_um, source=str(p), metadata=meta)


def claims_oct(path: str | Path) -> bool:
    """Cheap check (extension and header only): is this something ``read_oct`` reads?

    Grey TIFFs (not our labels files), ``.npy``, zarr folders, grey PNG/PGM/JPEG/BMP,
    vendor suffixes, and folders whose first image file is a grey B-scan.
    """
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        if _is_zarr(p):
            return True
        files = _bscan_files(p)
        return bool(files) and claims_oct(files[0])
    if not p.is_file():
        return False
    if p.suffix.lower() in (".npy", *VENDOR_READERS):
        return True
    if name.endswith(TIFF_SUFFIXES):
        return samples_per_pixel(p) == 1 and not is_labels_file(p)
    if name.endswith(RASTER_SUFFIXES):
        try:
            return not raster_header(p).colour
        except SkinsegInputError:
            return False
    return False
