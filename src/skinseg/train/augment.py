"""On-the-fly augmentation of (image, labels) training patches, by modality.

One random affine transform (flip, 90° turn, rotation, shear, zoom) and a random crop
position are drawn per sample and applied to the image (linear interpolation) and the
labels (nearest neighbour) in a single resampling, so both stay aligned. Intensity
changes (contrast, brightness, gamma, blur, speckle noise, per-channel colour/stain
jitter) touch the image only.

OCT keeps depth order: :func:`oct_augmentation` flips laterally only, never vertically,
never turns by 90°, and limits rotation and shear to a few degrees, so along every A-scan
the layers still come in anatomical order. Biopsy images and photographs have no
preferred direction: :func:`rgb_augmentation` adds vertical flips and 90° turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

_MAX_OCT_TILT_DEG = 15.0


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes; a zero range switches that change off.

    Attributes
    ----------
    modality
        ``"oct"`` (depth order kept: no vertical flip, no 90° turn, small tilts only) or
        ``"rgb"`` (biopsy images, photographs).
    flip_lateral, flip_vertical, rot90
        Random left-right flip, up-down flip, and turn by a multiple of 90°.
    rotation_deg, shear_deg
        Largest rotation and shear angle (uniform in ``±``).
    zoom
        Scale factor range ``(low, high)``; > 1 magnifies.
    contrast, brightness
        Contrast factor drawn in ``1 ± contrast``; offset in ``± brightness`` × the
        patch's standard deviation.
    gamma
        Gamma range ``(low, high)`` applied between the patch's minimum and maximum.
    blur_sigma
        Largest Gaussian blur sigma (px), drawn per sample (resolution of other devices).
    speckle
        Largest amplitude (× patch standard deviation) of added fine-grained noise.
    colour
        Per-channel gain ``1 ± colour`` and offset ``± colour`` × std (stain/colour
        jitter; colour images only).
    """

    modality: str
    flip_lateral: bool = True
    flip_vertical: bool = False
    rot90: bool = False
    rotation_deg: float = 0.0
    shear_deg: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    contrast: float = 0.0
    brightness: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)
    blur_sigma: float = 0.0
    speckle: float = 0.0
    colour: float = 0.0

    def __post_init__(self) -> None:
        if self.modality not in ("oct", "rgb"):
            raise ValueError(f"augmentation modality must be 'oct' or 'rgb', not {self.modality!r}")
        if self.modality == "oct":
            if self.flip_vertical or self.rot90:
                raise ValueError(
                    "OCT augmentation cannot flip vertically or turn by 90°: depth order "
                    "(air, skin layers, dermis from the top down) carries meaning"
                )
            if max(abs(self.rotation_deg), abs(self.shear_deg)) > _MAX_OCT_TILT_DEG:
                raise ValueError(
                    f"OCT augmentation: rotation and shear must stay within ±{_MAX_OCT_TILT_DEG}°"
                )
        low, high = self.zoom
        if not 0 < low <= high:
            raise ValueError(f"zoom range must be 0 < low <= high, got {self.zoom}")
        if not 0 < self.gamma[0] <= self.gamma[1]:
            raise ValueError(f"gamma range must be 0 < low <= high, got {self.gamma}")


def oct_augmentation(**changes) -> Augmentation:
    """OCT B-scans: lateral flips, small rotations/shears/zooms, crops, intensity, speckle."""
    defaults = dict(
        flip_lateral=True, rotation_deg=5.0, shear_deg=5.0, zoom=(0.85, 1.2),
        contrast=0.25, brightness=0.2, gamma=(0.7, 1.4), blur_sigma=1.0, speckle=0.3,
    )
    return Augmentation("oct", **{**defaults, **changes})


def rgb_augmentation(**changes) -> Augmentation:
    """Biopsy images and photos: flips, 90° turns, rotations, shears, crops, colour jitter."""
    defaults = dict(
        flip_lateral=True, flip_vertical=True, rot90=True, rotation_deg=10.0, shear_deg=5.0,
        zoom=(0.9, 1.1), contrast=0.2, brightness=0.1, gamma=(0.8, 1.25), blur_sigma=0.5,
        speckle=0.05, colour=0.1,
    )
    return Augmentation("rgb", **{**defaults, **changes})


def crop_only(modality: str) -> Augmentation:
    """Random crops and nothing else (e.g. to compare with augmented training)."""
    return Augmentation(modality, flip_lateral=False)


def _matrix(rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """2×2 map from output (row, col) offsets to input offsets."""
    theta = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    shear = np.tan(np.deg2rad(rng.uniform(-aug.shear_deg, aug.shear_deg)))
    zoom = np.exp(rng.uniform(np.log(aug.zoom[0]), np.log(aug.zoom[1])))
    m = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = m @ np.array([[1.0, 0.0], [shear, 1.0]]) / zoom  # shear tilts rows, keeps depth order
    if aug.flip_lateral and rng.random() < 0.5:
        m = m @ np.diag([1.0, -1.0])
    if aug.flip_vertical and rng.random() < 0.5:
        m = m @ np.diag([-1.0, 1.0])
    if aug.rot90:
        m = m @ np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), int(rng.integers(4)))
    return m


def _centre(rng: np.random.Generator, size: int, half_extent: float, focus: float | None) -> float:
    """Random crop centre along one axis, near ``focus`` if given; the crop stays inside
    the image when it fits, and then always holds ``focus``."""
    middle = (size - 1) / 2
    low, high = min(half_extent, middle), max(size - 1 - half_extent, middle)
    if focus is None:
        return float(rng.uniform(low, high))
    return float(np.clip(focus + rng.uniform(-0.8, 0.8) * half_extent, low, high))


def _intensity(rng: np.random.Generator, image: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Contrast, brightness, gamma, blur, speckle and colour jitter on ``(C, H, W)``."""
    std = float(image.std()) or 1.0
    if aug.blur_sigma > 0:
        image = ndi.gaussian_filter(image, (0.0, *[rng.uniform(0, aug.blur_sigma)] * 2))
    if aug.gamma != (1.0, 1.0):
        low, high = float(image.min()), float(image.max())
        if high > low:
            unit = (image - low) / (high - low)
            image = low + (high - low) * unit ** np.float32(rng.uniform(*aug.gamma))
    if aug.contrast or aug.brightness:
        mean = image.mean()
        factor = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
        image = mean + factor * (image - mean) + rng.uniform(-aug.brightness, aug.brightness) * std
    if aug.colour and image.shape[0] > 1:
        gain = rng.uniform(1 - aug.colour, 1 + aug.colour, size=(image.shape[0], 1, 1))
        offset = rng.uniform(-aug.colour, aug.colour, size=(image.shape[0], 1, 1)) * std
        image = image * gain + offset
    if aug.speckle > 0:
        noise = ndi.gaussian_filter(rng.standard_normal(image.shape), (0.0, 0.7, 1.0))
        noise *= rng.uniform(0, aug.speckle) * std / (noise.std() or 1.0)
        image = image + noise
    return image.astype(np.float32, copy=False)


def augment(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    aug: Augmentation,
    patch: tuple[int, int],
    focus: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One randomly transformed and cropped training patch.

    Parameters
    ----------
    image
        ``(channels, height, width)`` float32, already normalised.
    labels
        ``(height, width)`` integer class indices.
    rng
        Source of randomness (the caller seeds it for reproducible training).
    aug
        What to vary (:func:`oct_augmentation`, :func:`rgb_augmentation`, :func:`crop_only`).
    patch
        Output ``(rows, cols)``. Images smaller than the patch are centred and extended
        by repeating their edge pixels (as are corners uncovered by a rotation).
    focus
        Input ``(row, col)`` to hold in the patch, e.g. a pixel of a rare class; by
        default the crop lies anywhere.

    Returns
    -------
    (image ``(channels, rows, cols)`` float32, labels ``(rows, cols)`` of the input dtype)
    """
    m = _matrix(rng, aug)
    out_centre = (np.asarray(patch, dtype=float) - 1) / 2
    half_extent = np.abs(m) @ out_centre  # half size of the patch's footprint in the input
    focus = (None, None) if focus is None else focus
    in_centre = np.array([_centre(rng, n, h, f) for n, h, f in zip(labels.shape, half_extent, focus)])
    offset = in_centre - m @ out_centre
    lab = ndi.affine_transform(labels, m, offset, output_shape=patch, order=0, mode="nearest")
    # channel by channel: a 3-D linear resampling would interpolate across channels too (2× the work)
    img = np.stack([ndi.affine_transform(channel, m, offset, output_shape=patch, order=1, mode="nearest")
                    for channel in image])
    return _intensity(rng, img, aug), lab
