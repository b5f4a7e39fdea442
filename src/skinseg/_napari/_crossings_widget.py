"""The "Count nerve crossings" dock widget: RGB biopsy image → tissue, nerves, crossings, IENFD.

Count runs :func:`skinseg.segment.biopsy.iter_count_crossings` in a thread worker (progress
bar, Cancel) and adds tissue and nerve Labels, the boundary band and the crossings as
Points, all at µm scale. Adding or deleting points updates the count and IENFD at once;
after editing the tissue or nerve labels, Recount reruns only the crossing step. The
method lists are read again whenever they are opened, so newly trained models appear. The
logic lives in :mod:`skinseg._napari._crossings_logic`.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox, create_widget,
)  # fmt: skip
from qtpy.QtWidgets import QFileDialog, QSizePolicy

from skinseg.errors import SkinsegInputError
from skinseg.measure.crossings import CrossingParams
from skinseg.models.files import read_model_info
from skinseg.segment.biopsy import BiopsyAnalysis, iter_count_crossings
from skinseg._napari._crossings_logic import (
    TASKS, BiopsyInput, CrossingsSession, biopsy_input, layer_pixel_size, method_choices, result_layers,
)  # fmt: skip
from skinseg._napari._choices import DEVICES, MODEL_FILE, ModelChoices, ModelComboBox
from skinseg._napari._worker import start_work

MAIN_PARAMS = {"skeleton": ("junction_um", "reach_um"), "seed": ("band_width_um", "dbscan_eps_um")}
"""Crossing parameters shown for each rule; the others appear with "advanced parameters"."""
PIXEL_SIZE_NOTE = " ⚠ pixel size unknown (1 µm assumed): set 'pixel size (µm)' and count again."


def _param_widget(name: str, default: Any) -> FloatSpinBox | SpinBox:
    label = name.replace("_um", " (µm)").replace("_", " ")
    if isinstance(default, int):
        return SpinBox(value=default, min=0, max=10_000, label=label, name=name)
    widget = FloatSpinBox(value=default, min=0.0, max=10_000.0, step=0.1, label=label, name=name)
    widget.native.setDecimals(3)
    widget.value = default
    return widget


def _recount_steps(session: CrossingsSession, masks: tuple[Any, Any], params: CrossingParams):
    """Progress generator around the (single-step) crossing detection."""
    yield 0, 1, "finding crossings"
    return session.recount(masks, params)


class CrossingsWidget(Container):
    """Count nerve fibres crossing the dermal-epidermal junction; IENFD per mm."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self._viewer = napari_viewer
        self._image_in = create_widget(annotation=napari.layers.Image, label="biopsy image (RGB)")
        self._choices = {key: ModelChoices(task, method_choices) for key, task in TASKS.items()}
        self._method = {key: ModelComboBox(choices, f"{key} method / model") for key, choices in self._choices.items()}
        self._file = {key: FileEdit(mode="r", filter="*.safetensors", label=f"{key} model file", visible=False)
                      for key in TASKS}  # fmt: skip
        self._device = ComboBox(choices=DEVICES, value="auto", label="device")
        self._pixel_size = FloatSpinBox(value=1.0, min=0.0, max=1000.0, step=0.05, label="pixel size (µm)")
        self._pixel_size.native.setDecimals(4)  # e.g. 0.3250 µm at 40×
        defaults = CrossingParams()
        self._rule = ComboBox(choices=["skeleton", "seed"], value=defaults.rule, label="rule")
        self._params = {f.name: _param_widget(f.name, getattr(defaults, f.name)) for f in fields(CrossingParams)
                        if f.name != "rule"}  # fmt: skip
        self._advanced = CheckBox(value=False, text="advanced parameters")
        self._run = PushButton(text="Count")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._recount = PushButton(text="Recount (after editing labels)", enabled=False)
        self._export = PushButton(text="Export CSV…", enabled=False)
        self._status = Label(value="")
        self._count = Label(value="")
        super().__init__(widgets=[
            self._image_in, *[w for key in TASKS for w in (self._method[key], self._file[key])], self._device,
            self._pixel_size, self._rule, self._advanced, *self._params.values(),
            self._run, self._cancel, self._count, self._recount, self._export, self._status,
        ])  # fmt: skip
        for label in (self._status, self._count):
            label.native.setWordWrap(True)
            label.native.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)  # full width, not centred
        for key in TASKS:
            self._method[key].changed.connect(self._method_changed)
        self._rule.changed.connect(self._params_shown)
        self._advanced.changed.connect(self._params_shown)
        self._image_in.changed.connect(self._image_changed)
        self._run.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        self._recount.changed.connect(self.recount)
        self._export.changed.connect(self._choose_export_folder)
        self.session: CrossingsSession | None = None
        self.worker: Any = None
        self._cancelled = False
        self._image_changed()
        self._params_shown()

    # --- inputs ----------------------------------------------------------------
    def _method_changed(self) -> None:
        for key in TASKS:
            self._file[key].visible = self._method[key].value == MODEL_FILE

    def _params_shown(self) -> None:
        for name, widget in self._params.items():
            widget.visible = self._advanced.value or name in MAIN_PARAMS[self._rule.value]

    def _image_changed(self) -> None:
        size, known = layer_pixel_size(self._image_in.value)
        self._pixel_size.value = size
        self._status.value = "" if known or self._image_in.value is None else PIXEL_SIZE_NOTE.strip()

    def method(self, key: str) -> Any:
        """What to pass as the tissue (``"tissue"``) or nerve (``"nerves"``) method."""
        if self._method[key].value == MODEL_FILE:
            path = Path(self._file[key].value)
            if not path.is_file():
                raise SkinsegInputError(f"Choose a {TASKS[key]} .safetensors model file (none selected).")
            return str(path)
        return self._choices[key].models[self._method[key].value]

    def use_model(self, path: str | Path) -> None:
        """Refresh the model lists and select the model file at ``path`` as the tissue or the
        nerve method, whichever its task is (:class:`SkinsegInputError` for other models)."""
        task = read_model_info(path).task
        key = next((k for k, t in TASKS.items() if t == task), None)
        if key is None:
            raise SkinsegInputError(f"{Path(path).name} is a model for '{task}', not for biopsy tissue or nerves.")
        label = self._choices[key].add_file(path)
        for combo in self._method.values():
            combo.reset_choices()
        self._method[key].value = label

    def params(self) -> CrossingParams:
        """The crossing parameters set in the widget (µm)."""
        return CrossingParams(rule=self._rule.value, **{k: w.value for k, w in self._params.items()})

    def _apply_pixel_size(self, inp: BiopsyInput) -> None:
        """Give the image layer the chosen µm scale, so the results lie on it."""
        if tuple(inp.layer.scale[-2:]) != inp.scale:
            inp.layer.scale = (*inp.layer.scale[:-2], *inp.scale)
            inp.layer.metadata = {**inp.layer.metadata, "pixel_size_known": True}

    # --- counting --------------------------------------------------------------
    def start(self) -> None:
        """Segment the chosen image and count crossings in a worker (errors go to the status)."""
        try:
            inp = biopsy_input(self._image_in.value, self._pixel_size.value)
            methods = {key: self.method(key) for key in TASKS}
            params = self.params()
        except (SkinsegInputError, TypeError, ValueError) as e:
            self._status.value = f"⚠ {e}"
            return
        known = layer_pixel_size(inp.layer)[1] or tuple(inp.layer.scale[-2:]) != inp.scale
        self._apply_pixel_size(inp)
        image, device = inp.image, self._device.value
        self._busy(True, f"counting crossings in {inp.name} …" + ("" if known else PIXEL_SIZE_NOTE))
        self.worker = start_work(
            lambda: iter_count_crossings(image, inp.pixel_size_um, tissue_method=methods["tissue"],
                                         nerve_method=methods["nerves"], params=params, device=device),
            description=f"Counting crossings in {inp.layer.name}",
            on_result=lambda analysis: self._show(analysis, inp, known),
            on_step=lambda done, total, message: self._step(message),
            on_finish=lambda: self._busy(False),
            on_error=lambda error: setattr(self._status, "value", f"⚠ {error}"),
        )  # fmt: skip

    def recount(self) -> None:
        """Rerun only the crossing step on the edited tissue and nerve layers."""
        if self.session is None:
            return
        session = self.session
        try:
            params, masks = self.params(), session.edited_masks()
        except (SkinsegInputError, TypeError, ValueError) as e:
            self._status.value = f"⚠ {e}"
            return
        self._busy(True, "recounting from the edited labels …")
        self.worker = start_work(
            lambda: _recount_steps(session, masks, params),
            description="Recounting crossings",
            on_result=lambda result: self._recounted(session, result),
            on_finish=lambda: self._busy(False),
            on_error=lambda error: setattr(self._status, "value", f"⚠ {error}"),
        )

    def cancel(self) -> None:
        """Stop the running count; nothing is added."""
        if self.worker is not None:
            self.worker.quit()
            self._cancelled = True
            self._status.value = "Cancelled."

    def _step(self, message: str) -> None:
        if not self._cancelled:  # steps already queued when Cancel was pressed
            self._status.value = message

    def _busy(self, busy: bool, message: str | None = None) -> None:
        self._run.enabled, self._cancel.enabled = not busy, busy
        self._recount.enabled = not busy and self.session is not None
        if busy:
            self._cancelled = False
        else:
            self.worker = None
        if message is not None:
            self._status.value = message

    def _show(self, analysis: BiopsyAnalysis, inp: BiopsyInput, known: bool) -> None:
        names = {"tissue": analysis.tissue.method, "nerves": analysis.nerves.method}
        tuples = result_layers(analysis, inp, self._viewer)
        tissue, nerves, boundary, points = (getattr(self._viewer, f"add_{kind}")(data, **kwargs)
                                            for data, kwargs, kind in tuples)  # fmt: skip
        if self.session is not None:
            self.session.points.events.data.disconnect(self.refresh_count)
        self.session = CrossingsSession(inp, analysis.crossings, tissue, nerves, boundary, points, names)
        points.events.data.connect(self.refresh_count)
        self._viewer.layers.selection.active = points
        self.refresh_count()
        notes = "".join(f" ⚠ {note}." for note in analysis.crossings.warnings)
        done = f"Done: {names['tissue']} tissue, {names['nerves']} nerves."
        self._status.value = done + notes + ("" if known else PIXEL_SIZE_NOTE)
        self._export.enabled = True

    def _recounted(self, session: CrossingsSession, result: Any) -> None:
        if session is self.session:
            session.show(result)  # the points' data event refreshes the count
            self._status.value = f"Recounted from '{session.tissue.name}' and '{session.nerves.name}'."

    # --- outputs ---------------------------------------------------------------
    def refresh_count(self, event: Any = None) -> None:
        """Show the count and IENFD of the points now in the crossings layer."""
        if self.session is not None:
            self._count.value = self.session.summary_line()

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``crossings.csv`` (edited points, px and µm) and ``summary.csv`` into ``out_dir``."""
        written = self.session.export(out_dir)
        self._status.value = f"exported {self.session.count} crossings to {out_dir}"
        return written

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.native, "Export the crossings to folder")
        if folder:
            self.export(folder)
