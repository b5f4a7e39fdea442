"""Run a library progress generator in a napari thread worker: progress bar, Cancel, result.

The window never freezes: the work runs in a thread; each ``(done, total, message)``
step moves a napari progress bar (activity dock) and the widget's own status line. Steps
reach the GUI at most every :data:`STEP_INTERVAL_S` (the last one always): napari's bar
processes Qt events on each update, and a flood of fast steps would re-enter it without
end. Cancel closes the library generator at once (in a plain thread), so its clean-up
runs then, not whenever the worker is garbage-collected.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import notification_manager, show_error

from skinseg.errors import SkinsegInputError


STEP_INTERVAL_S = 0.1
"""Least time between two progress steps shown (the final step is always shown)."""


def _forward(gen_factory: Callable[[], Any], started: list):
    """A generator function that re-yields the steps, throttled, and returns the result.

    The library generator is made in the worker thread and appended to ``started``.
    """

    def work():
        gen = gen_factory()
        started.append(gen)
        shown = -math.inf
        while True:
            try:
                step = next(gen)
            except StopIteration as end:
                return end.value
            done, total, _ = step
            if time.monotonic() - shown >= STEP_INTERVAL_S or done >= total:
                shown = time.monotonic()
                yield step

    return work


def start_work(
    gen_factory: Callable[[], Any],
    *,
    description: str,
    on_result: Callable[[Any], None],
    on_step: Callable[[int, int, str], None] | None = None,
    on_finish: Callable[[], None] | None = None,
    on_error: Callable[[SkinsegInputError], None] | None = None,
) -> GeneratorWorker:
    """Start ``gen_factory()`` (a progress generator) in a worker and wire it to the GUI.

    ``on_result`` runs in the GUI thread with the generator's return value; a
    :class:`SkinsegInputError` is shown as an error notification and passed to
    ``on_error`` (e.g. for the widget's status line); ``on_finish`` runs in every case
    (done, cancelled or failed). Cancel with ``worker.quit()``.
    """
    bar = progress(total=0, desc=description)

    closed = False

    def step(value: tuple[int, int, str]) -> None:
        done, total, message = value
        if on_step is not None:  # first: napari's progress bar processes Qt events (re-entrant)
            on_step(done, total, message)
        if closed:
            return
        bar.total = total
        bar.n = done
        bar.set_description(f"{description}: {message}")
        bar.refresh()

    def failed(error: Exception) -> None:
        if isinstance(error, SkinsegInputError):  # bad input: one clear line, no traceback
            show_error(str(error))
            if on_error is not None:
                on_error(error)
        else:
            notification_manager.receive_error(type(error), error, error.__traceback__)

    def finished() -> None:
        nonlocal closed
        closed = True
        bar.close()
        if on_finish is not None:
            on_finish()

    # Passing "errored" here replaces superqt's default, which re-raises in the GUI thread.
    def aborted() -> None:  # the worker stopped between steps: the generator is idle
        for gen in started:
            threading.Thread(target=gen.close, name=f"closing {description}", daemon=True).start()

    started: list = []
    connections = {
        "yielded": step, "returned": on_result, "errored": failed, "finished": finished, "aborted": aborted,
    }
    worker: GeneratorWorker = create_worker(_forward(gen_factory, started), _connect=connections)
    return worker
