"""The "Segment skin layers" dock widget: OCT image layer → Labels layer (+ uncertainty).

Collects inputs, runs :func:`skinseg.segment.engine.iter_segment` in a thread worker with
a progress bar and Cancel, and puts the result in layers at the image's µm scale. A new
result never overwrites a labels layer the user may have edited: it gets a new name. The
model list is read again whenever it is opened, so newly trained models appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox, create_widget

from skinseg.classes import OCT_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.models.registry import OCT_LAYERS
from skinseg.segment.engine import SegmentationResult, iter_segment
from skinseg._napari._choices import DEVICES, MODEL_FILE, ModelChoices, ModelComboBox, unique_name
from skinseg._napari._layers import LayerDataTuple, labels_layer
from skinseg._napari._worker import start_work



def result_layers(result: SegmentationResult, image: napari.layers.Image, viewer: napari.viewer.Viewer) -> list[LayerDataTuple]:
    """Labels (and uncertainty) layers for ``result`` at the image's scale and position."""
    scale = tuple(float(s) for s in image.scale)
    where = {"translate": tuple(image.translate)}
    layers = [
        labels_layer(result.labels, scale, OCT_CLASSES, unique_name(viewer, f"{image.name} layers"),
                     opacity=0.5, metadata_extra={"model": result.model}, **where)
    ]
    if result.uncertainty is not None:
        layers.append((
            result.uncertainty.astype("float32"),
            {"name": unique_name(viewer, f"{image.name} uncertainty"), "scale": scale, "units": ("µm",) * len(scale),
             "colormap": "inferno", "blending": "additive", "opacity": 0.7, "contrast_limits": (0.0, 1.0),
             "visible": False, **where},
            "image",
        ))
    return layers


class SegmentWidget(Container):
    """Segment an OCT B-scan or tomogram into skin layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self._viewer = napari_viewer
        self._choices = ModelChoices(OCT_LAYERS)
        self._image_in = create_widget(annotation=napari.layers.Image, label="OCT image")
        self._method = ModelComboBox(self._choices, "method / model")
        self._model_file = FileEdit(mode="r", filter="*.safetensors", label="model file", visible=False)
        self._device = ComboBox(choices=DEVICES, value="auto", label="device")
        self._batch = SpinBox(value=8, min=1, max=256, label="batch (B-scans)")
        self._post = CheckBox(value=True, text="anatomical post-processing")
        self._uncertainty = CheckBox(value=False, text="uncertainty map (where to correct first)")
        self._run = PushButton(text="Segment")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._status = Label(value="")
        super().__init__(widgets=[
            self._image_in, self._method, self._model_file, self._device, self._batch, self._post,
            self._uncertainty, self._run, self._cancel, self._status,
        ])
        self._status.native.setWordWrap(True)
        self._method.changed.connect(self._method_changed)
        self._run.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        self.worker = None
        self._method_changed()

    def _method_changed(self) -> None:
        file_chosen = self._method.value == MODEL_FILE
        self._model_file.visible = file_chosen
        classical = not file_chosen and self._choices.models[self._method.value].is_classical
        for widget in (self._device, self._batch, self._post, self._uncertainty):
            widget.enabled = not classical

    def use_model(self, path: str | Path) -> None:
        """Refresh the model list, add the model file at ``path`` if it is not listed, select it.

        Raises
        ------
        SkinsegInputError
            If ``path`` is not an OCT-layers model file.
        """
        label = self._choices.add_file(path)
        self._method.reset_choices()
        self._method.value = label

    def model_spec(self) -> Any:
        """What to pass to :func:`iter_segment` as the model."""
        if self._method.value == MODEL_FILE:
            path = Path(self._model_file.value)
            if not path.is_file():
                raise SkinsegInputError("Choose a .safetensors model file (none selected).")
            return str(path)
        return self._choices.models[self._method.value]

    def start(self) -> None:
        """Start segmenting the chosen image layer in a worker."""
        image = self._image_in.value
        if image is None:
            self._status.value = "Open or choose an OCT image layer first."
            return
        if image.rgb or image.ndim not in (2, 3):
            self._status.value = (
                f"Layer '{image.name}' is {'RGB' if image.rgb else f'{image.ndim}-D'}; "
                "OCT segmentation needs a grey B-scan (2-D) or tomogram (3-D)."
            )
            return
        try:
            model = self.model_spec()
        except SkinsegInputError as e:
            self._status.value = str(e)
            return
        scale = tuple(float(s) for s in image.scale)
        data = image.data
        options = {
            "device": self._device.value, "batch_size": self._batch.value,
            "postprocess": self._post.value, "uncertainty": self._uncertainty.value,
        }
        if not image.metadata.get("pixel_size_known", True):
            self._status.value = f"'{image.name}': pixel size unknown (1 µm assumed); set it for µm results."
        self._run.enabled, self._cancel.enabled = False, True
        self.worker = start_work(
            lambda: iter_segment(data, model, pixel_size_um=scale, **options),
            description=f"Segmenting {image.name}",
            on_result=lambda result: self._show(result, image),
            on_step=lambda done, total, message: setattr(self._status, "value", message),
            on_finish=self._finished,
            on_error=lambda error: setattr(self._status, "value", f"⚠ {error}"),
        )

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self._status.value = "Cancelled."

    def _finished(self) -> None:
        self._run.enabled, self._cancel.enabled = True, False
        self.worker = None

    def _show(self, result: SegmentationResult, image: napari.layers.Image) -> None:
        for data, kwargs, kind in result_layers(result, image, self._viewer):
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)
        notes = " ".join(result.messages)
        self._status.value = f"Done: {result.model} on {result.device}. {notes}".strip()
