"""Live training curves for the Train widget: losses and validation Dice per class.

Matplotlib draws in a thread of its own (:func:`render_curves`, plain Agg, no Qt) and the
widget only shows the finished image, so however slow a redraw is on a busy machine, the
window never waits for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

from skinseg.classes import ClassTable
from skinseg._napari._train_logic import Curves

DPI = 90
HEIGHT = 320
"""Height of the plot in pixels."""


def render_curves(curves: Curves, table: ClassTable | None, size_px: tuple[int, int]) -> np.ndarray:
    """The curves as an RGBA image ``(height, width, 4)`` uint8 of ``size_px`` (width, height).

    Top: train and validation loss; bottom: validation Dice per class (background left
    out) in the class table's colours. Safe to call from any thread.
    """
    figure = Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    loss_ax = figure.add_axes((0.15, 0.59, 0.82, 0.38))
    dice_ax = figure.add_axes((0.15, 0.15, 0.82, 0.38), sharex=loss_ax)
    loss_ax.plot(curves.epochs, curves.train_loss, "o-", ms=3, label="train")
    loss_ax.plot(curves.epochs, curves.val_loss, "o-", ms=3, label="validation")
    colours = {c.name: c.color for c in table.classes} if table is not None else {}
    for name, values in curves.dice.items():
        if name != "background":
            dice_ax.plot(curves.epochs, values, "o-", ms=3, label=name, color=colours.get(name))
    loss_ax.tick_params(labelbottom=False)
    loss_ax.set_ylabel("loss")
    dice_ax.set(ylabel="val Dice", xlabel="epoch", ylim=(0, 1.02))
    dice_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (loss_ax, dice_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2, loc="best")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


class CurvesView(QLabel):
    """Shows :func:`render_curves` images, rendered one at a time off the GUI thread.

    :meth:`show_curves` while a render is running keeps only the newest curves and
    renders them next.
    """

    rendered = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.setFixedHeight(HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # the image never resizes the label
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skinseg-curves")
        self._latest: tuple[Curves, ClassTable | None] = (Curves(), None)
        self._busy = False
        self._waiting = False
        self.rendered.connect(self._show_image)
        self.show_curves(*self._latest)

    @property
    def busy(self) -> bool:
        """Whether a render is running or waiting."""
        return self._busy or self._waiting

    def show_curves(self, curves: Curves, table: ClassTable | None) -> None:
        """Render (a copy of) ``curves`` and show it when done."""
        self._latest = (curves.copy(), table)
        if self._busy:
            self._waiting = True
            return
        self._busy = True
        size = (max(self.width(), 360), HEIGHT)
        self._pool.submit(self._render, *self._latest, size)

    def _render(self, curves: Curves, table: ClassTable | None, size: tuple[int, int]) -> None:
        image = None
        try:
            image = render_curves(curves, table, size)
        finally:  # reaches the GUI thread as a queued signal; None when rendering failed
            self.rendered.emit(image)

    def _show_image(self, rgba: np.ndarray | None) -> None:
        self._busy = False
        if rgba is not None:
            h, w = rgba.shape[:2]
            self.setPixmap(QPixmap.fromImage(QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()))
        if self._waiting:
            self._waiting = False
            self.show_curves(*self._latest)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.show_curves(*self._latest)
