"""OCT skin phantom: a tomogram that looks like real skin OCT, with exact ground truth.

>>> from skinseg.synth.oct import oct_phantom
>>> ph = oct_phantom((32, 128, 64), seed=1)
>>> ph.image.shape, ph.image.dtype, ph.labels.dtype
((32, 128, 64), dtype('uint16'), dtype('uint8'))

Layers from the top: optional glass window and coupling gel, stratum corneum (bright
entry band), epidermis, DEJ band (class 5, centred on the true DEJ) with 2-D rete-ridge
dips, dermis. The image has depth attenuation, correlated speckle, a noise floor with
vertical streaks, and occasional hairs casting shadows. Depth maps are sub-pixel truth in
pixels, in the convention of :mod:`skinseg.measure.boundaries`, and the labels are drawn
from them so that ``surface_depth(labels)`` and ``dej_depth(labels)`` lie within half a
pixel of the truth.

The truth means what an expert's annotation of a log-scaled B-scan means (the face-dev
masks): the skin surface lies half way up the displayed entry rise, the DEJ near the top
of the rise from the dark epidermis to the bright upper dermis. The image is rendered to
match (see :mod:`skinseg.synth._oct_render`), not the labels moved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.synth._oct_geometry import Boundaries, OCTAnatomy, boundaries
from skinseg.synth._oct_render import OCTLook, render

__all__ = ["OCTAnatomy", "OCTLook", "OCTPhantom", "oct_phantom"]

FACE_DEV_PIXEL_SIZE_UM = (10.0, 3.3 * 370 / 512, 10.0)
"""Default pixel size (µm): the face-dev scans' axial optical pixel, 10 µm en face."""


@dataclass(frozen=True)
class OCTPhantom:
    """A phantom tomogram (or B-scan) and its truth.

    Attributes
    ----------
    image
        uint16 ``(n_bscans, depth, width)``, or ``(depth, width)`` for a 2-D phantom.
    labels
        uint8, same shape, in :data:`skinseg.classes.OCT_CLASSES`.
    surface_depth, sc_depth, dej_depth
        True skin surface, bottom of the stratum corneum and DEJ (centre of the DEJ
        band): float32 sub-pixel depth in pixels, ``(n_bscans, width)`` or ``(width,)``.
        The surface is where the displayed entry rise is half way up; the DEJ is the
        centre of the reflectivity ramp into the dermis, near the top of its displayed
        rise (as in expert annotations).
    thickness_um
        True epidermal thickness ``(dej_depth - surface_depth) × axial pixel size`` (µm of
        optical path when the axial size is: divide by the refractive index for tissue µm).
    pixel_size_um
        µm per pixel along ``(n_bscans, depth, width)`` (first unused for 2-D).
    glass_top, glass_bottom, gel_top
        Boundaries of the glass window and gel (the gel ends at the surface); ``None``
        when that layer is absent.
    """

    image: np.ndarray
    labels: np.ndarray
    surface_depth: np.ndarray
    sc_depth: np.ndarray
    dej_depth: np.ndarray
    thickness_um: np.ndarray
    pixel_size_um: tuple[float, float, float]
    glass_top: np.ndarray | None = None
    glass_bottom: np.ndarray | None = None
    gel_top: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def to_image_data(self) -> tuple[ImageData, ImageData]:
        """The image and the labels as :class:`ImageData` with their pixel size."""
        spatial = self.pixel_size_um[-self.image.ndim :]
        meta = {"phantom": dict(self.metadata)}
        image = ImageData(self.image, spatial, source="OCT phantom", metadata=meta)
        labels = ImageData(
            self.labels,
            spatial,
            source="OCT phantom labels",
            metadata={**meta, "class_table": OCT_CLASSES.to_dict()},
        )
        return image, labels


def _check(shape: tuple[int, ...], pixel_size_um: tuple[float, ...]) -> tuple[int, int, int]:
    """Validate the shape and pixel size; return the 3-D shape."""
    if len(shape) not in (2, 3) or any(int(n) != n or n < 1 for n in shape):
        raise SkinsegInputError(
            f"OCT phantom: shape must be (n_bscans, depth, width) or (depth, width) of "
            f"positive integers, got {shape}"
        )
    if len(pixel_size_um) != 3 or not all(np.isfinite(s) and s > 0 for s in pixel_size_um):
        raise SkinsegInputError(
            f"OCT phantom: pixel_size_um must be 3 positive µm sizes along "
            f"(n_bscans, depth, width), got {pixel_size_um}"
        )
    full = (1, *shape) if len(shape) == 2 else tuple(shape)
    if full[1] < 8:
        raise SkinsegInputError(f"OCT phantom: depth {full[1]} px is too small; use at least 8")
    return tuple(int(n) for n in full)


def _labels(b: Boundaries, depth: int) -> np.ndarray:
    """OCT labels ``(n_bscans, depth, width)`` from top-down boundary maps (pixels).

    Row ``r`` takes the class of the deepest boundary with ``r + 0.5 >= boundary``.
    """
    layers = [
        (b.glass_top, OCT_CLASSES.value_of("glass")),
        (b.gel_top, OCT_CLASSES.value_of("gel")),
        (b.surface, OCT_CLASSES.value_of("stratum corneum")),
        (b.sc_bottom, OCT_CLASSES.value_of("epidermis")),
        (b.dej - b.dej_half, OCT_CLASSES.value_of("DEJ")),
        (b.dej + b.dej_half, OCT_CLASSES.value_of("dermis")),
    ]
    centres = np.arange(depth, dtype=np.float32)[None, :, None] + 0.5
    labels = np.zeros((b.surface.shape[0], depth, b.surface.shape[1]), dtype=np.uint8)
    previous = 0
    for top, value in layers:
        if top is not None:
            labels += (centres >= top[:, None, :]).astype(np.uint8) * np.uint8(value - previous)
            previous = value
    return labels


def oct_phantom(
    shape: tuple[int, ...] = (64, 256, 256),
    pixel_size_um: tuple[float, float, float] = FACE_DEV_PIXEL_SIZE_UM,
    *,
    seed: int = 0,
    glass: bool = False,
    gel: bool = False,
    anatomy: OCTAnatomy | None = None,
    look: OCTLook | None = None,
    tissue_window_um: float | None = None,
) -> OCTPhantom:
    """Make an OCT skin phantom with exact layer truth.

    Parameters
    ----------
    shape
        ``(n_bscans, depth, width)`` for a tomogram or ``(depth, width)`` for a B-scan.
    pixel_size_um
        µm per pixel along ``(n_bscans, depth, width)``; depth is optical path length.
        The default matches the face-dev scans (about 2.4 µm axial).
    seed
        Random seed; the same arguments and seed give the same phantom.
    glass, gel
        Add a glass window and/or coupling gel above the skin. Under glass without gel
        the skin touches the glass; gel without glass has a free top.
    anatomy
        Layer geometry in µm (:class:`OCTAnatomy`); defaults resemble facial skin.
    look
        Rendering (:class:`OCTLook`); defaults resemble the face-dev scans.
    tissue_window_um
        If given, the tissue signal stops this far below the surface (the face-dev
        exports keep about 490 µm); below it only the noise floor remains.

    Returns
    -------
    OCTPhantom

    Raises
    ------
    SkinsegInputError
        On a shape that is not 2-D/3-D or non-positive pixel sizes (and
        :class:`OCTAnatomy` on non-positive layer sizes).
    """
    pixel_size_um = tuple(float(s) for s in pixel_size_um)
    n_b, depth, width = _check(tuple(shape), pixel_size_um)
    anatomy = anatomy or OCTAnatomy()
    look = look or OCTLook()
    geometry_seed, render_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(geometry_seed)
    b = boundaries(rng, (n_b, width), pixel_size_um, anatomy, glass=glass, gel=gel)
    labels = _labels(b, depth)
    image = render(
        render_seed, labels, b, pixel_size_um, look,
        hairs_per_mm=anatomy.hairs_per_mm, tissue_window_um=tissue_window_um,
    )

    def squeeze(a: np.ndarray | None) -> np.ndarray | None:
        return a[0] if a is not None and len(shape) == 2 else a

    return OCTPhantom(
        image=squeeze(image),
        labels=squeeze(labels),
        surface_depth=squeeze(b.surface),
        sc_depth=squeeze(b.sc_bottom),
        dej_depth=squeeze(b.dej),
        thickness_um=squeeze((b.dej - b.surface) * np.float32(pixel_size_um[1])),
        pixel_size_um=pixel_size_um,
        glass_top=squeeze(b.glass_top),
        glass_bottom=squeeze(b.glass_bottom),
        gel_top=squeeze(b.gel_top),
        metadata={
            "seed": seed, "glass": glass, "gel": gel, "tissue_window_um": tissue_window_um,
            "anatomy": asdict(anatomy), "look": asdict(look),
        },
    )
