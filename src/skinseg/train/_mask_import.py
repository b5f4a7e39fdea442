"""Import of folders of images and masks into a training set (:func:`import_mask_folder`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from skinseg.classes import OCT_CLASSES, ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.io._tiff import TIFF_SUFFIXES
from skinseg.io.labels import read_labels
from skinseg.io.masks import band_mask_to_labels
from skinseg.io.oct import BSCAN_SUFFIXES, natural_key, read_oct
from skinseg.io.rgb import read_raster, read_rgb
from skinseg.progress import ProgressGenerator
from skinseg.train.trainset import AddReport, TrainingSet

MASK_KINDS = ("labels", "epidermis-band")
_NO_PIXEL_SIZE = ".*pixel size not recorded"


def read_mask(path: str | Path, kind: str, table: ClassTable) -> np.ndarray:
    """Labels from a mask file (TIFF, PNG, ...) for a set with classes ``table``.

    ``kind`` ``"labels"``: the file holds class values (a labels TIFF must carry the same
    table); ``"epidermis-band"``: an epidermis band mask, converted per column to OCT
    layer labels (air / epidermis / dermis).
    """
    path = Path(path)
    if kind not in MASK_KINDS:
        raise SkinsegInputError(f"mask kind must be one of {MASK_KINDS}, not {kind!r}.")
    if path.name.lower().endswith(TIFF_SUFFIXES):
        with warnings.catch_warnings():  # the mask's pixel size is not used
            warnings.filterwarnings("ignore", message=_NO_PIXEL_SIZE)
            found = read_labels(path)
        stored = found.metadata.get("class_table")
        if kind == "labels" and stored is not None and stored != table:
            raise SkinsegInputError(f"{path}: labels of class table '{stored.name}', the set uses '{table.name}'.")
        mask = np.asarray(found.data)
    else:
        mask = read_raster(path)
    if kind == "labels":
        return mask
    if table != OCT_CLASSES:
        raise SkinsegInputError(f"{path}: epidermis band masks become OCT layer labels, not '{table.name}' classes.")
    return band_mask_to_labels(mask, source=str(path))


def import_mask_folder(
    trainset: TrainingSet,
    images_dir: str | Path,
    masks_dir: str | Path,
    *,
    kind: str = "labels",
    pixel_size_um: float | Sequence[float] | None = None,
) -> ProgressGenerator[AddReport]:
    """Add every image of ``images_dir`` with the mask of the same name in ``masks_dir``.

    Progress generator (:mod:`skinseg.progress`) returning the combined :class:`AddReport`.
    Images are paired with masks by file name without suffix (``0001.pgm`` with
    ``0001.png``) and added as B-scans ``0, 1, ...`` of one source, the images folder,
    in natural order, so a block split keeps neighbouring B-scans together.

    Parameters
    ----------
    trainset
        The set to grow.
    images_dir, masks_dir
        Folders of images (TIFF, PNG, PGM, JPEG, BMP) and of masks.
    kind
        ``"labels"``: masks hold class values of the set's table. ``"epidermis-band"``:
        masks mark the epidermis band (0/255, thresholded at 127), converted per column
        to air / epidermis / dermis (:func:`skinseg.io.masks.band_mask_to_labels`).
    pixel_size_um
        µm per pixel (one number or rows, columns); default what the files say.

    Raises
    ------
    SkinsegInputError
        Missing folders, an image without mask, an unknown ``kind``, or any error of
        :meth:`TrainingSet.add` (pairs added before it stay in the set).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    if kind not in MASK_KINDS:
        raise SkinsegInputError(f"mask kind must be one of {MASK_KINDS}, not {kind!r}.")
    if kind == "epidermis-band" and trainset.class_table != OCT_CLASSES:
        raise SkinsegInputError(
            f"{masks_dir}: epidermis band masks become OCT layer labels, but {trainset.folder} uses classes "
            f"'{trainset.class_table.name}'; import them into an OCT set."
        )
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise SkinsegInputError(f"{folder}: no such folder of images or masks.")
    images = sorted((f for f in images_dir.iterdir() if f.is_file() and not f.name.startswith(".")
                     and f.name.lower().endswith(BSCAN_SUFFIXES)), key=natural_key)
    masks = {f.stem.lower(): f for f in masks_dir.iterdir() if f.is_file() and f.name.lower().endswith(BSCAN_SUFFIXES)}
    if not images:
        raise SkinsegInputError(f"{images_dir}: no image files (TIFF, PNG, PGM, JPEG, BMP) here.")
    if missing := [f.name for f in images if f.stem.lower() not in masks]:
        raise SkinsegInputError(
            f"{masks_dir}: no mask for {len(missing)} image(s) of {images_dir} ({', '.join(missing[:5])}); "
            "masks must have the image's file name (any image suffix)."
        )
    read = read_rgb if trainset.modality == "rgb" else read_oct
    report = AddReport(trainset.folder)
    unknown_size = False
    for i, path in enumerate(images):
        yield i, len(images), f"adding {path.name}"
        with warnings.catch_warnings():  # one warning for the folder, below
            warnings.filterwarnings("ignore", message=_NO_PIXEL_SIZE)
            image = read(path, pixel_size_um=pixel_size_um)
        unknown_size |= not image.pixel_size_known
        labels = read_mask(masks[path.stem.lower()], kind, trainset.class_table)
        report += trainset.add(image, labels, source=str(images_dir), index=i,
                               provenance={"file": path.name, "labels_file": str(masks[path.stem.lower()])})
    yield len(images), len(images), f"added {len(images)} image(s)"
    if unknown_size:
        note = (f"{images_dir}: pixel size not recorded in the images; stored as unknown. "
                "Pass pixel_size_um (--pixel-size) to record it.")
        report = replace(report, notes=(*report.notes, note))
    return report
