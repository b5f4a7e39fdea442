"""Skin-biopsy segmentation and the whole nerve-crossing pipeline, from the RGB image.

* :func:`segment_tissue`: background / epidermis / dermis (``TISSUE_CLASSES``).
* :func:`segment_nerves`: a 0/1 nerve-fibre mask.
* :func:`iter_count_crossings`: both, then the crossings and IENFD
  (:func:`skinseg.measure.crossings.find_crossings`), as a progress generator.

Each segmentation takes ``method="classical"`` (zero training: stain separation,
thresholds from the image, ridge filters; :mod:`skinseg.segment._biopsy_classical`) or a
trained model (``"builtin"``, a model name or ``.safetensors`` path, a
:class:`~skinseg.models.registry.ModelEntry`, or a ``(network, ModelInfo)`` pair) for the
tasks ``"biopsy-tissue"`` and ``"biopsy-nerves"``. Images larger than a model's tile run
in overlapping tiles (MONAI sliding windows). Documentation: docs/biopsy-segmentation.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinseg import progress
from skinseg.classes import NERVE_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.measure.crossings import CrossingParams, CrossingResult, find_crossings
from skinseg.models.files import ModelInfo
from skinseg.models.registry import BIOPSY_NERVES, BIOPSY_TISSUE, ModelEntry
from skinseg.segment import _biopsy_classical as classical
from skinseg.segment._biopsy_classical import STAINS, ClassicalParams
from skinseg.segment._biopsy_network import network_probabilities

__all__ = [
    "BiopsyAnalysis", "ClassicalParams", "NerveResult", "TissueResult", "count_crossings",
    "iter_count_crossings", "iter_segment_nerves", "iter_segment_tissue", "segment_nerves",
    "segment_tissue",
]

Method = str | Path | ModelEntry | tuple[torch.nn.Module, ModelInfo]
_DERMIS = TISSUE_CLASSES.value_of("dermis")


@dataclass(frozen=True)
class TissueResult:
    """Output of :func:`segment_tissue`.

    Attributes
    ----------
    labels
        ``(H, W)`` uint8 in ``TISSUE_CLASSES`` (0 background, 1 epidermis, 2 dermis).
    dermis_probability
        ``(H, W)`` float32: the network's dermis probability; for the classical method
        its dermis mask as 0/1.
    method
        ``"classical"`` or the model's name.
    stain
        ``"dab"`` or ``"fluorescent"`` (as given, or detected).
    pixel_size_um
        µm per pixel used.
    """

    labels: np.ndarray
    dermis_probability: np.ndarray
    method: str
    stain: str
    pixel_size_um: float


@dataclass(frozen=True)
class NerveResult:
    """Output of :func:`segment_nerves`.

    Attributes
    ----------
    mask
        ``(H, W)`` uint8 0/1 nerve fibres (``NERVE_CLASSES``).
    probability
        ``(H, W)`` float32 in [0, 1]: the network's nerve probability, or for the
        classical method the ridge response scaled to its maximum.
    method, stain, pixel_size_um
        As in :class:`TissueResult`.
    """

    mask: np.ndarray
    probability: np.ndarray
    method: str
    stain: str
    pixel_size_um: float


@dataclass(frozen=True)
class BiopsyAnalysis:
    """Output of :func:`iter_count_crossings`: both segmentations and the crossings.

    ``crossings.count``, ``crossings.ienfd_per_mm`` (per mm of epidermal surface) and
    ``crossings.ienfd_per_mm_dej`` are the numbers to report; ``crossings.warnings``
    says when there was no epidermis or no nerve.
    """

    tissue: TissueResult
    nerves: NerveResult
    crossings: CrossingResult
    source: str


def biopsy_rgb(image: Any, pixel_size_um: float | None) -> tuple[np.ndarray, float, str]:
    """Check an RGB biopsy image; return it as a uint8 array, its pixel size and a name.

    Raises
    ------
    SkinsegInputError
        Grey, RGBA or other non-RGB arrays; NaN; a pixel size missing, 0, negative or
        not finite.
    """
    source = "biopsy image"
    if isinstance(image, ImageData):
        source = image.source or source
        if pixel_size_um is None:
            if not image.pixel_size_known:
                warnings.warn(f"{source}: pixel size unknown; using 1.0 µm per pixel.", stacklevel=3)
            pixel_size_um = image.pixel_size_um[0]
        image = image.data
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        kind = "an RGBA image (4 channels)" if rgb.ndim == 3 and rgb.shape[-1] == 4 else (
            "a grey-scale image" if rgb.ndim == 2 else f"an array of shape {rgb.shape}")
        raise SkinsegInputError(
            f"{source}: {kind}, but biopsy segmentation needs a colour (height, width, 3) RGB "
            "image. Open the original colour image, or drop the alpha channel (save as RGB)."
        )
    if min(rgb.shape[:2]) < 16:
        raise SkinsegInputError(f"{source}: shape {rgb.shape} is too small to segment (≥ 16 px a side).")
    if rgb.dtype != np.uint8:
        if not np.issubdtype(rgb.dtype, np.number) or not np.isfinite(rgb).all():
            raise SkinsegInputError(f"{source}: the image holds NaN, infinite or non-numeric values.")
        top = 1.0 if np.issubdtype(rgb.dtype, np.floating) and rgb.max() <= 1.0 else 255.0
        rgb = np.clip(rgb / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if pixel_size_um is None or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        raise SkinsegInputError(
            f"{source}: the pixel size must be a positive number of µm; got {pixel_size_um}. "
            "Give the image's µm per pixel (e.g. 0.5 for a 20× objective)."
        )
    return rgb, float(pixel_size_um), source


def _stain(rgb: np.ndarray, stain: str) -> str:
    if stain not in STAINS:
        raise SkinsegInputError(f"stain must be one of {STAINS}; got {stain!r}")
    return classical.detect_stain(rgb) if stain == "auto" else stain


def _is_classical(method: Method) -> bool:
    return isinstance(method, str) and method == "classical"


def segment_tissue(image: Any, pixel_size_um: float | None = None, method: Method = "classical",
                   **kwargs: Any) -> TissueResult:
    """Segment a biopsy image into background, epidermis and dermis; see :func:`iter_segment_tissue`."""
    return progress.run(iter_segment_tissue(image, pixel_size_um, method, **kwargs))


def iter_segment_tissue(
    image: Any,
    pixel_size_um: float | None = None,
    method: Method = "classical",
    *,
    stain: str = "auto",
    device: str | torch.device = "auto",
    params: ClassicalParams | None = None,
) -> progress.ProgressGenerator[TissueResult]:
    """Tissue labels of an RGB biopsy image, yielding progress.

    Parameters
    ----------
    image
        ``(H, W, 3)`` RGB (uint8, or floats in [0, 1]) or an RGB :class:`ImageData`.
    pixel_size_um
        µm per pixel; default the :class:`ImageData`'s.
    method
        ``"classical"``, or a ``"biopsy-tissue"`` model (module docstring).
    stain
        ``"auto"`` (bright slide → ``"dab"``, dark → ``"fluorescent"``), ``"dab"`` or
        ``"fluorescent"``: which channels the classical method reads.
    device
        For models: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
    params
        :class:`ClassicalParams` for the classical method.

    Returns
    -------
    TissueResult. A section without a dense-nuclei layer (no epidermis in view) is all
    dermis; an image without tissue is all background.
    """
    rgb, px, source = biopsy_rgb(image, pixel_size_um)
    stain = _stain(rgb, stain)
    if _is_classical(method):
        labels = yield from classical.iter_classical_tissue(rgb, px, stain, params or ClassicalParams())
        return TissueResult(labels, (labels == _DERMIS).astype(np.float32), "classical", stain, px)
    probs, name = yield from _network("tissue", source, rgb, px, method, device)
    labels = np.asarray(TISSUE_CLASSES.values, np.uint8)[probs.argmax(axis=0)]
    return TissueResult(labels, probs[TISSUE_CLASSES.values.index(_DERMIS)], name, stain, px)


def segment_nerves(image: Any, pixel_size_um: float | None = None, method: Method = "classical",
                   **kwargs: Any) -> NerveResult:
    """Trace nerve fibres in a biopsy image; see :func:`iter_segment_nerves`."""
    return progress.run(iter_segment_nerves(image, pixel_size_um, method, **kwargs))


def iter_segment_nerves(
    image: Any,
    pixel_size_um: float | None = None,
    method: Method = "classical",
    *,
    stain: str = "auto",
    device: str | torch.device = "auto",
    params: ClassicalParams | None = None,
) -> progress.ProgressGenerator[NerveResult]:
    """Nerve-fibre mask of an RGB biopsy image, yielding progress.

    Parameters as :func:`iter_segment_tissue`, with ``"biopsy-nerves"`` models. An image
    without stained fibres gives an empty mask.
    """
    rgb, px, source = biopsy_rgb(image, pixel_size_um)
    stain = _stain(rgb, stain)
    if _is_classical(method):
        params = params or ClassicalParams()
        yield 0, classical.NERVE_STEPS, f"{source}: ridge filter on the {stain} fibre channel"
        channel = classical.fibre_channel(rgb, stain)
        ridges = classical.ridge_response(channel, px, params)
        yield 1, classical.NERVE_STEPS, "nerves: hysteresis threshold and clean-up"
        mask = classical.classical_nerves(ridges, channel, px, params)
        yield 2, classical.NERVE_STEPS, "nerves done"
        return NerveResult(mask.astype(np.uint8), ridges, "classical", stain, px)
    probs, name = yield from _network("nerves", source, rgb, px, method, device)
    nerve = NERVE_CLASSES.values.index(1)
    return NerveResult((probs.argmax(axis=0) == nerve).astype(np.uint8), probs[nerve], name, stain, px)


_NETWORKS = {"tissue": (BIOPSY_TISSUE, TISSUE_CLASSES, "tissue network"),
             "nerves": (BIOPSY_NERVES, NERVE_CLASSES, "nerve network")}


def _network(
    what: str, source: str, rgb: np.ndarray, px: float, method: Method, device: str | torch.device
) -> progress.ProgressGenerator[tuple[np.ndarray, str]]:
    """Class probabilities and model name of the ``what`` (tissue/nerves) network, as one step."""
    task, table, title = _NETWORKS[what]
    yield 0, 1, f"{source}: {title}"
    found = network_probabilities(rgb, px, method, task, table, device)
    yield 1, 1, f"{what} done"
    return found


def count_crossings(image: Any, pixel_size_um: float | None = None, **kwargs: Any) -> BiopsyAnalysis:
    """The whole pipeline without progress; see :func:`iter_count_crossings`."""
    return progress.run(iter_count_crossings(image, pixel_size_um, **kwargs))


def iter_count_crossings(
    image: Any,
    pixel_size_um: float | None = None,
    *,
    tissue_method: Method = "classical",
    nerve_method: Method = "classical",
    params: CrossingParams | None = None,
    stain: str = "auto",
    device: str | torch.device = "auto",
    classical_params: ClassicalParams | None = None,
) -> progress.ProgressGenerator[BiopsyAnalysis]:
    """Tissue, nerves, then the nerve crossings of the DEJ, yielding progress.

    Parameters
    ----------
    image, pixel_size_um, stain, device
        As :func:`iter_segment_tissue`.
    tissue_method, nerve_method
        ``"classical"`` or a model of the task ``"biopsy-tissue"`` / ``"biopsy-nerves"``.
    params
        :class:`~skinseg.measure.crossings.CrossingParams` (rule and lengths in µm).
    classical_params
        :class:`ClassicalParams` for the classical methods.

    Yields
    ------
    ``(done, total, message)`` over the steps of both segmentations and the count.

    Returns
    -------
    BiopsyAnalysis. No epidermis: count 0, IENFD undefined (NaN), with a warning in
    ``crossings.warnings``; no nerves: count 0, IENFD 0.
    """
    rgb, px, source = biopsy_rgb(image, pixel_size_um)
    stain = _stain(rgb, stain)
    tissue_steps = classical.TISSUE_STEPS if _is_classical(tissue_method) else 1
    nerve_steps = classical.NERVE_STEPS if _is_classical(nerve_method) else 1
    total = tissue_steps + nerve_steps + 1
    common = dict(stain=stain, device=device, params=classical_params)
    tissue = yield from progress.offset(iter_segment_tissue(rgb, px, tissue_method, **common), 0, total)
    nerves = yield from progress.offset(iter_segment_nerves(rgb, px, nerve_method, **common), tissue_steps, total)
    yield total - 1, total, "crossings: nerve fibres through the DEJ"
    crossings = find_crossings(tissue.labels, nerves.mask, px, params)
    yield total, total, f"{source}: {crossings.count} crossing(s)"
    return BiopsyAnalysis(tissue, nerves, crossings, source)
