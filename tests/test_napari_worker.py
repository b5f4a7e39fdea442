"""Library progress generators run in napari workers: steps, result, cancel, errors."""

from __future__ import annotations

import time

import pytest

from skinseg import progress
from skinseg.errors import SkinsegInputError

pytestmark = pytest.mark.napari


def _work(n: int, pause: float = 0.0, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise SkinsegInputError("layer 'x': bad input")
        time.sleep(pause)
        yield i + 1, n, f"step {i + 1}"
    return f"done {n}"


def test_run_drives_generator_and_reports():
    seen = []
    assert progress.run(_work(3), lambda d, t, m: seen.append((d, t))) == "done 3"
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_worker_reports_steps_and_result(qtbot):
    from skinseg._napari._worker import start_work

    steps, results, finished = [], [], []
    start_work(lambda: _work(4), description="toy", on_result=results.append,
               on_step=lambda d, t, m: steps.append(d), on_finish=lambda: finished.append(1))
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert results == ["done 4"] and steps == [1, 4] and finished == [1]  # fast steps thinned, the last kept


def test_worker_thins_a_flood_of_steps(qtbot, make_napari_viewer):
    """Thousands of instant steps: no re-entrant recursion in napari's bar, a few shown."""
    from skinseg._napari._worker import start_work

    make_napari_viewer()
    steps, results = [], []
    start_work(lambda: _work(20000), description="flood", on_result=results.append,
               on_step=lambda d, t, m: steps.append(d))
    qtbot.waitUntil(lambda: bool(results), timeout=10000)
    assert results == ["done 20000"] and steps[0] == 1 and steps[-1] == 20000 and len(steps) < 100


def test_worker_cancel_stops_early(qtbot):
    from skinseg._napari._worker import start_work

    steps, results, finished = [], [], []
    worker = start_work(lambda: _work(200, pause=0.01), description="toy", on_result=results.append,
                        on_step=lambda d, t, m: steps.append(d), on_finish=lambda: finished.append(1))
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=5000)
    worker.quit()
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert results == [] and len(steps) < 200


def test_worker_cancel_closes_the_generator(qtbot):
    """Cancel runs the library generator's clean-up promptly, not at garbage collection."""
    from skinseg._napari._worker import start_work

    cleaned, steps = [], []

    def work():
        try:
            yield from _work(200, pause=0.02)
        finally:
            cleaned.append(1)

    worker = start_work(work, description="toy", on_result=lambda r: None, on_step=lambda d, t, m: steps.append(d))
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=5000)
    worker.quit()
    qtbot.waitUntil(lambda: bool(cleaned), timeout=5000)


def test_worker_shows_input_error(qtbot, monkeypatch):
    from skinseg._napari import _worker

    shown, finished = [], []
    monkeypatch.setattr(_worker, "show_error", shown.append)
    _worker.start_work(lambda: _work(3, fail_at=1), description="toy", on_result=lambda r: None,
                       on_finish=lambda: finished.append(1))
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert shown == ["layer 'x': bad input"]


def test_steps_reach_widget_in_order_before_result(qtbot, make_napari_viewer):
    """napari's progress bar processes Qt events while updating; steps must not arrive late."""
    from skinseg._napari._worker import start_work

    make_napari_viewer()  # the activity dock's progress bars exist only with a window
    events = []
    start_work(lambda: _work(5, pause=0.12), description="toy", on_result=lambda r: events.append("result"),
               on_step=lambda d, t, m: events.append(d), on_finish=lambda: events.append("finished"))
    qtbot.waitUntil(lambda: "finished" in events, timeout=5000)
    qtbot.wait(50)
    assert events == [1, 2, 3, 4, 5, "result", "finished"]  # steps slower than the throttle: all shown
