"""The "Train segmentation model" dock widget: add corrected slices, retrain, use the model.

Slices come from (image, labels) layer pairs: "Add current slice" (the viewer's slice of
a stack) and "Add all annotated slices" add them to the training-set folder when one is
chosen (saved on disk at once), else to a list kept in memory. Train runs
:func:`skinseg._napari._train_logic.run_training` in a thread worker with live loss and
Dice curves, and Stop (the engine keeps the best model). "Use this model" puts the result
in the user model folder and selects it in the Segment widget.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox, create_widget,
)  # fmt: skip

from skinseg.classes import ClassTable
from skinseg.errors import SkinsegInputError
from skinseg.models.files import read_model_info
from skinseg.train import TrainConfig, aligned_config
from skinseg._napari import _train_logic as logic
from skinseg._napari._choices import DEVICES
from skinseg._napari._crossings_widget import CrossingsWidget
from skinseg._napari._segment_widget import SegmentWidget
from skinseg._napari._train_plot import CurvesView
from skinseg._napari._worker import start_work

PLUGIN = "napari-skinseg"
USING_WIDGET = {"oct-layers": (SegmentWidget, "Segment skin layers")}
"""Model task → the widget that runs such models and its name in the manifest; other
(biopsy) tasks go to :data:`BIOPSY_WIDGET`."""
BIOPSY_WIDGET = (CrossingsWidget, "Count nerve crossings")
STOPPED = {"epochs": "all epochs run", "early stopping": "stopped early", "interrupted": "stopped by you"}
"""How a run ended (the model file's ``training["stopped"]``), in words."""


def _row(*widgets: Any) -> Container:
    """Widgets side by side, each with its label."""
    row = Container(widgets=widgets, layout="horizontal", labels=True)
    row.margins = (0, 0, 0, 0)
    return row



class TrainWidget(Container):
    """Retrain a segmentation model on corrected labels, with live curves."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self._viewer = napari_viewer
        self._image_in = create_widget(annotation=napari.layers.Image, label="image")
        self._labels_in = create_widget(annotation=napari.layers.Labels, label="labels")
        self._task = ComboBox(choices=[logic.FROM_LABELS, *logic.TASK_TABLES], label="classes")
        self._folder = FileEdit(mode="d", label="training-set folder", tooltip="empty: keep the slices in memory")
        self._add_current = PushButton(text="Add current slice")
        self._add_all = PushButton(text="Add all annotated slices")
        self._contents = Label(value="")
        self._start_model = ComboBox(choices=logic.START_CHOICES, label="start from")
        self._start_file = FileEdit(mode="r", filter="*.safetensors", label="model file", visible=False)
        self._epochs = SpinBox(value=30, min=1, max=1000, label="epochs")
        self._rate = FloatSpinBox(value=1e-4, min=1e-6, max=1e-1, step=1e-4, label="learning rate")
        self._patience = SpinBox(value=10, min=1, max=1000, label="patience (epochs)")
        self._device = ComboBox(choices=DEVICES, value="auto", label="device")
        self._batch = SpinBox(value=8, min=1, max=256, label="batch size")
        self._patch = SpinBox(value=256, min=32, max=2048, step=32, label="patch (px)")
        self._output = FileEdit(mode="w", filter="*.safetensors", label="save model as")
        self._train = PushButton(text="Train")
        self._stop = PushButton(text="Stop (keeps the best model)", enabled=False)
        self._use = PushButton(text="Use this model", enabled=False)
        self._status = Label(value="")
        self.plot = CurvesView()
        super().__init__(widgets=[
            Label(value="<b>1. Training slices</b> (image + corrected labels)"),
            self._image_in, self._labels_in, self._task, self._folder,
            _row(self._add_current, self._add_all), self._contents,
            Label(value="<b>2. Model and settings</b>"),
            self._start_model, self._start_file, _row(self._epochs, self._patience), _row(self._rate, self._batch),
            _row(self._device, self._patch), self._output,
            Label(value="<b>3. Train</b>"),
            _row(self._train, self._stop), self._status,
        ])  # fmt: skip
        self._rate.native.setDecimals(6)
        for label in (self._contents, self._status):
            label.native.setWordWrap(True)
        self.native.layout().addWidget(self.plot)
        self.native.layout().addWidget(self._use.native)
        self._start_model.changed.connect(self._start_changed)
        self._add_current.changed.connect(self.add_current_slice)
        self._add_all.changed.connect(self.add_annotated_slices)
        self._folder.changed.connect(self.show_contents)
        self._train.changed.connect(self.start)
        self._stop.changed.connect(self.stop)
        self._use.changed.connect(self.use_model)
        self.pairs: list[logic.Pair] = []
        self.curves = logic.Curves()
        self.model_path: Path | None = None
        self._stop_event = threading.Event()
        self._reports: queue.Queue = queue.Queue()
        self._table: ClassTable | None = None
        self.worker: Any = None
        self._start_changed()
        self.show_contents()

    # --- inputs ----------------------------------------------------------------
    def _start_changed(self) -> None:
        """Show the file choice for a model file; the start's usual settings (the aligned
        recipe: 150 epochs, batch 2, rate 2e-3, patience 100, 160 × 512 surface windows)."""
        choice = self._start_model.value
        self._start_file.visible = choice == logic.MODEL_FILE
        self._patch.visible = choice != logic.ALIGNED
        self._rate.value = 1e-3 if choice == logic.SCRATCH else 1e-4
        if choice == logic.ALIGNED:
            recipe = aligned_config()
            self._epochs.value, self._batch.value = recipe.epochs, recipe.batch_size
            self._rate.value, self._patience.value = recipe.learning_rate, recipe.patience

    def folder(self) -> Path | None:
        """The chosen training-set folder, or None (slices kept in memory)."""
        text = str(self._folder.value)
        return Path(text) if text not in ("", ".") else None

    def class_table(self) -> ClassTable:
        labels = self._labels_in.value
        if self._task.value == logic.FROM_LABELS and labels is None:
            raise SkinsegInputError("Choose a labels layer, or the task (OCT layers, biopsy tissue or nerves).")
        return logic.class_table_of(labels, self._task.value)

    def _say(self, text: str) -> None:
        self._status.value = text

    # --- the set ---------------------------------------------------------------
    def add_current_slice(self) -> None:
        """Add the slice shown in the viewer (a 2-D pair: the whole image)."""
        labels = self._labels_in.value
        stack = labels is not None and labels.ndim == 3
        self._add([logic.current_slice(labels, self._viewer.dims.point)] if stack else None)

    def add_annotated_slices(self) -> None:
        """Add every slice of the pair holding any label."""
        self._add(None)

    def _add(self, slices: list[int] | None) -> None:
        try:
            table = self.class_table()
            pair = logic.make_pair(self._image_in.value, self._labels_in.value, table, slices)
            folder = self.folder()
            if folder is None:
                logic.check_pixel_size(self.pairs, pair)
                self.pairs.append(pair)
                report = f"added {pair.annotated().shape[0]} slice(s) of {pair.name} (in memory)"
            else:
                report = str(logic.add_to_set(folder, pair, table, slices))
        except (SkinsegInputError, OSError) as e:
            self._say(f"⚠ {e}")
            return
        self._say(report)
        self.show_contents()

    def show_contents(self) -> None:
        """Show what the set holds: the folder's contents, or the in-memory pairs."""
        folder = self.folder()
        try:
            if folder is not None:
                self._contents.value = logic.set_contents(folder)[1]
            else:
                self._contents.value = logic.pairs_summary(self.pairs, self.class_table() if self.pairs else None)
        except SkinsegInputError as e:
            self._contents.value = f"⚠ {e}"

    # --- training --------------------------------------------------------------
    def request(self) -> logic.TrainRequest:
        """The training run the controls describe."""
        folder = self.folder()
        table = (logic.set_contents(folder)[0] if folder is not None else None) or self.class_table()
        aligned = self._start_model.value == logic.ALIGNED
        settings = {"epochs": self._epochs.value, "learning_rate": self._rate.value, "patience": self._patience.value,
                    "device": self._device.value, "batch_size": self._batch.value}
        if aligned:  # the recipe's 160 × 512 windows, not the square patch
            # uncompiled: compiling holds the interpreter lock for up to 0.35 s at a time,
            # and the window must stay responsive (``skinseg train --recipe aligned`` compiles)
            config = aligned_config(**settings, compile=False)
        else:
            config = TrainConfig(**settings, patch=(self._patch.value,) * 2)
        name = folder.name if folder is not None else self.pairs[0].name if self.pairs else table.name
        output = Path(self._output.value) if str(self._output.value) not in ("", ".") else logic.default_output(name)
        return logic.TrainRequest(table, output, config, tuple(self.pairs), folder, self._start_spec(),
                                  aligned=aligned)

    def _start_spec(self) -> str | Path | None:
        """``"builtin"``, the chosen model file, or None (from scratch, either recipe)."""
        choice = self._start_model.value
        if choice != logic.MODEL_FILE:
            return "builtin" if choice == logic.BUILTIN else None
        path = Path(self._start_file.value)
        if not path.is_file():
            raise SkinsegInputError("Choose the .safetensors model file to start from (none selected).")
        return path

    def start(self) -> None:
        """Train in a worker; curves update at every epoch."""
        try:
            request = self.request()
        except SkinsegInputError as e:
            self._say(f"⚠ {e}")
            return
        self.curves, self.model_path, self._table = logic.Curves(), None, request.table
        self._stop_event, self._reports = threading.Event(), queue.Queue()
        self.draw_curves()
        self._train.enabled, self._stop.enabled, self._use.enabled = False, True, False
        self._say(f"training → {request.output}")
        stop, reports = self._stop_event, self._reports
        self.worker = start_work(
            lambda: logic.run_training(request, stop, reports),
            description="Training",
            on_result=self._trained,
            on_step=self._step,
            on_finish=self._finished,
            on_error=lambda e: self._say(f"⚠ {e}"),
        )

    def _step(self, done: int, total: int, message: str) -> None:
        self._say(message)
        if self.curves.take(self._reports):
            self.draw_curves()

    def draw_curves(self) -> None:
        """Plot the epochs reported so far."""
        self.plot.show_curves(self.curves, self._table)

    def stop(self) -> None:
        """Stop after the current batch; the best model so far is kept."""
        if self.worker is not None:
            self._stop_event.set()
            self._say("stopping after this batch: the best model so far is kept …")

    def _trained(self, path: Path | None) -> None:
        if path is None:
            self._say("Stopped before the first epoch ended: no model saved.")
            return
        self.model_path = path
        self._use.enabled = True
        training = read_model_info(path).training
        self._say(f"Done ({STOPPED.get(training['stopped'], training['stopped'])}): best epoch "
                  f"{training['best_epoch']} of {training['epochs_run']}, saved as {path}")

    def _finished(self) -> None:
        self._train.enabled, self._stop.enabled = True, False
        self.worker = None
        self.curves.take(self._reports)
        self.draw_curves()

    # --- using the result ------------------------------------------------------
    def use_model(self) -> None:
        """Put the model in the user model folder and select it in the widget that runs it
        (Segment skin layers for OCT layers, Count nerve crossings for biopsy tissue or nerves)."""
        if self.model_path is None:
            return
        try:
            path = self.model_path = logic.to_user_models(self.model_path)
            task = read_model_info(path).task
            self.using_widget(task).use_model(path)
        except (SkinsegInputError, OSError) as e:
            self._say(f"⚠ {e}")
            return
        self._say(f"{USING_WIDGET.get(task, BIOPSY_WIDGET)[1]} now uses {path.name} (saved in {path.parent})")

    def using_widget(self, task: str) -> SegmentWidget | CrossingsWidget:
        """The open widget that runs models of ``task``, or a new one docked."""
        kind, name = USING_WIDGET.get(task, BIOPSY_WIDGET)
        for widget in self._viewer.window.dock_widgets.values():
            if isinstance(widget, kind):
                return widget
        return self._viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
