"""The "Measure epidermis" dock widget: thickness map, summary, histogram, live while painting.

Measure runs the library in a thread worker; afterwards every paint, erase or fill in the
measured labels layer re-measures only the touched B-scans (collected over
:data:`DEBOUNCE_MS`, so a brush stroke triggers one update), and replacing the layer's data
re-measures it all. The logic lives in :mod:`skinseg._napari._measure_logic`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, PushButton, Table, create_widget
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog

from skinseg.errors import SkinsegInputError
from skinseg.measure.report import (
    COLORMAP, draw_colour_strip, draw_histogram, headline, histogram_bin_um, summary_rows,
)  # fmt: skip
from skinseg.measure.thickness import EpidermisMeasurement
from skinseg._napari._measure_logic import LabelsInput, MeasureSession, labels_input, touched_bscans
from skinseg._napari._worker import start_work

DEBOUNCE_MS = 150
"""Edits arriving within this many ms of each other are measured together."""

PIXEL_SIZE_NOTE = "\n⚠ pixel size not set (1 µm assumed): use 'Set pixel size (µm)' and measure again"
RI_NOTE = "1.0: axial pixel size already physical;\n1.4: converts optical path length in skin"


def _measure_steps(inp: LabelsInput, refractive_index: float, normal_correction: bool):
    """Progress generator around the (single-step) library measurement."""
    yield 0, 1, f"measuring {inp.name}"
    return inp.measure(refractive_index, normal_correction)


class MeasureWidget(Container):
    """Measure epidermal thickness and the DEJ from an OCT labels layer, in µm."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self._viewer = napari_viewer
        self._labels_in = create_widget(annotation=napari.layers.Labels, label="OCT labels")
        self._image_in = create_widget(annotation=napari.layers.Image | None, label="image (optional)")
        self._ri = FloatSpinBox(value=1.0, min=0.0, max=3.0, step=0.05, label="refractive index")
        self._normal = CheckBox(text="normal correction (thickness along the surface normal)")
        self._live = CheckBox(value=True, text="update while painting")
        self._measure = PushButton(text="Measure")
        self._export = PushButton(text="Export CSV…", enabled=False)
        self._status = Label(value="")
        self._table = Table(value=[["–"] for _ in range(9)], columns=["thickness"], label="summary")
        self._legend = Label(value="")
        super().__init__(
            widgets=[
                self._labels_in, self._image_in, self._ri, Label(value=RI_NOTE), self._normal, self._live,
                self._measure, self._status, self._table, self._legend, self._export,
            ]
        )  # fmt: skip
        self._table.read_only = True
        self._table.native.horizontalHeader().setStretchLastSection(True)
        for label in (self._status, self._legend):
            label.native.setWordWrap(True)
        self._figure = Figure(figsize=(4, 3))  # fixed layout: live redraws stay fast
        self._hist_ax = self._figure.add_axes((0.17, 0.42, 0.78, 0.54))
        self._bar_ax = self._figure.add_axes((0.17, 0.19, 0.78, 0.06), sharex=self._hist_ax)
        self._canvas = FigureCanvasQTAgg(self._figure)
        self._canvas.setMinimumHeight(320)
        self.native.layout().addWidget(self._canvas)
        self._timer = QTimer(singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.apply_pending)
        self._measure.changed.connect(self.measure)
        self._export.changed.connect(self._choose_export_folder)
        self.session: MeasureSession | None = None
        self.worker: Any = None
        self.pending: set[int] = set()
        self._generation = 0  # of the latest worker: an older one finishing is ignored

    # --- measuring -------------------------------------------------------------
    def measure(self) -> None:
        """Measure the chosen labels layer in a worker (errors go to the status line)."""
        try:
            inp = labels_input(self._labels_in.value, self._image_in.value)
        except SkinsegInputError as e:
            self._status.value = f"⚠ {e}"
            return
        self._start(inp, self._ri.value, self._normal.value)

    def _start(self, inp: LabelsInput, ri: float, normal: bool) -> None:
        if self.worker is not None:
            self.worker.quit()  # its result, if any, is dropped
        self._generation += 1
        generation = self._generation
        self._measure.enabled = False
        self._status.value = f"measuring {inp.name} …"
        self.worker = start_work(
            lambda: _measure_steps(inp, ri, normal),
            description="Measuring epidermis",
            on_result=lambda m: self._measured(generation, inp, m),
            on_finish=lambda: self._finished(generation),
            on_error=lambda e: self._failed(generation, e),
        )

    def _finished(self, generation: int) -> None:
        if generation != self._generation:
            return
        self.worker = None
        self._measure.enabled = True
        if self.pending and self.session is not None:
            self.apply_pending()  # edits made while the worker was measuring

    def _failed(self, generation: int, error: SkinsegInputError) -> None:
        if generation == self._generation:
            self._status.value = f"⚠ {error}"

    def _measured(self, generation: int, inp: LabelsInput, m: EpidermisMeasurement) -> None:
        if generation != self._generation:
            return
        old = self.session.inp.layer if self.session is not None else None
        if old is not inp.layer:
            if old is not None:
                old.events.paint.disconnect(self._on_paint)
                old.events.data.disconnect(self._on_data)
            inp.layer.events.paint.connect(self._on_paint)
            inp.layer.events.data.connect(self._on_data)
        self.session = MeasureSession(inp, m)
        self.pending.clear()
        self.refresh_outputs()

    # --- live updates ----------------------------------------------------------
    def _on_paint(self, event: Any) -> None:
        if self._live.value and self.session is not None:
            self.pending |= touched_bscans(event.value, self.session.inp.layer.data.shape)
            self._timer.start()

    def _on_data(self, event: Any) -> None:
        if self._live.value and self.session is not None:
            m = self.session.measurement
            self._start(self.session.inp, m.refractive_index, m.normal_correction)

    def apply_pending(self) -> None:
        """Re-measure the B-scans edited since the last update and refresh the outputs."""
        if self.session is None or self.worker is not None or not self.pending:
            return
        bscans, self.pending = sorted(self.pending), set()
        try:
            self.session.update(bscans)
        except SkinsegInputError as e:
            self._status.value = f"⚠ {e}"
            return
        self.refresh_outputs()

    # --- outputs ---------------------------------------------------------------
    def refresh_outputs(self) -> None:
        """Put the session's map and surfaces in the viewer; update table, histogram, legend."""
        session = self.session
        m = session.measurement
        session.show(self._viewer)
        self._table.value = {
            "data": [[value] for _, value in summary_rows(m.summary)],
            "index": [name for name, _ in summary_rows(m.summary)],
            "columns": ["thickness"],
        }
        table = self._table.native  # tall enough for every row: no scrolling
        table.setFixedHeight(table.verticalHeader().length() + table.horizontalHeader().height() + 4)
        lo, hi = session.clim
        self._legend.value = f"map colours ({COLORMAP}): {lo:.1f} µm (dark) → {hi:.1f} µm (bright)"
        self._status.value = headline(m.summary) + ("" if session.inp.pixel_size_known else PIXEL_SIZE_NOTE)
        draw_histogram(self._hist_ax, m.thickness_um, session.clim, min_bin_um=histogram_bin_um(m))
        self._hist_ax.set_xlabel("")
        self._hist_ax.tick_params(labelbottom=False)
        draw_colour_strip(self._bar_ax, session.clim)  # the map's legend, on the histogram's µm axis
        self._canvas.draw_idle()
        self._export.enabled = True

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write summary/per-B-scan CSV, JSON and ``thickness.png`` into ``out_dir``."""
        written = self.session.export(out_dir)
        self._status.value = f"exported to {out_dir}"
        return written

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.native, "Export the measurement to folder")
        if folder:
            self.export(folder)

