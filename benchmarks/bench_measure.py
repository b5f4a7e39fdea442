"""Benchmark the epidermis measurement: full volume and one-B-scan live update.

Run: ``python benchmarks/bench_measure.py [--repeats 5]``. Prints best and median
wall-clock seconds. Targets (issue 4): full measurement of a (256, 512, 512) labels
volume ≤ 2 s; a one-B-scan update of a (128, 512, 512) measurement well under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from skinseg.measure.thickness import measure_epidermis


def layered_labels(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """OCT labels: gel, stratum corneum, epidermis, DEJ band, dermis; 2 % bare A-scans.

    Surface and DEJ undulate smoothly, so every boundary moves between A-scans.
    """
    n, depth, width = shape
    y = np.arange(n)[:, None]
    x = np.arange(width)[None, :]
    surface = 0.25 * depth + 8 * np.sin(x / 40.0) + 5 * np.cos(y / 30.0)
    dej = surface + 0.1 * depth + 6 * np.sin(x / 13.0 + y / 17.0)
    z = np.arange(depth, dtype=np.float32)[None, :, None]
    crossed = np.zeros(shape, np.uint8)
    for top in (surface - 20, surface, surface + 4, dej - 1, dej + 2):  # gel SC epi DEJ dermis
        crossed += z + 0.5 >= top.astype(np.float32)[:, None, :]
    labels = np.where(crossed > 0, crossed + 1, 0).astype(np.uint8)  # 2 gel ... 6 dermis
    bare = np.random.default_rng(seed).random((n, width)) < 0.02
    labels *= ~bare[:, None, :]
    return labels


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best and median wall-clock seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widget", action="store_true", help="also time the napari widget's live update")
    args = parser.parse_args()
    sizes = (3.0, 3.3, 3.0)

    volume = layered_labels((256, 512, 512))
    for normal in (False, True):
        def full(normal: bool = normal) -> object:
            return measure_epidermis(volume, sizes, refractive_index=1.4, normal_correction=normal)

        best, med = timed(full, args.repeats)
        print(f"full measurement (256, 512, 512) normal_correction={normal}: "
              f"best {best:.3f} s, median {med:.3f} s  (target <= 2 s)")
    del volume

    volume = layered_labels((128, 512, 512))
    m = measure_epidermis(volume, sizes, refractive_index=1.4, normal_correction=True)
    i = 64
    volume[i, 150:200, 100:140] = 4  # paint a patch of epidermis

    best, med = timed(lambda: m.update(volume, [i]), max(args.repeats, 10))
    print(f"live update, one B-scan of (128, 512, 512): best {best * 1e3:.1f} ms, "
          f"median {med * 1e3:.1f} ms  (target well under 1 s)")
    s = m.summary
    print(f"coverage {s['coverage']:.3f}, mean thickness {s['thickness_mean_um']:.1f} µm")
    if args.widget:
        bench_widget(volume, sizes, max(args.repeats, 10))


def bench_widget(volume: np.ndarray, sizes: tuple[float, float, float], repeats: int) -> None:
    """Live update in the "Measure epidermis" widget: a brush stroke on one B-scan → outputs.

    Times (a) the widget's update alone (re-measure the B-scan, map, surfaces, table,
    histogram, drawn) and (b) paint to updated outputs, including the debounce wait.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    from skinseg._napari._measure_widget import DEBOUNCE_MS, MeasureWidget

    viewer = napari.Viewer(show=False)
    labels = viewer.add_labels(volume, scale=sizes, units=("µm",) * 3)
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.measure()
    while widget.worker is not None:
        QApplication.processEvents()
    labels.brush_size = 20
    update, end_to_end = [], []
    for k in range(repeats):
        i = 10 + 9 * k
        labels.paint((i, 200, 150 + k), 4)
        t0 = time.perf_counter()
        widget.apply_pending()
        widget._canvas.draw()
        QApplication.processEvents()
        update.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        labels.paint((i + 1, 200, 150 + k), 4)
        while widget.pending:
            QApplication.processEvents()
        widget._canvas.draw()
        QApplication.processEvents()
        end_to_end.append(time.perf_counter() - t0)
    for name, times in (("widget update", update), (f"paint to outputs (debounce {DEBOUNCE_MS} ms)", end_to_end)):
        print(f"{name}, one B-scan of {volume.shape}: best {min(times) * 1e3:.0f} ms, "
              f"median {statistics.median(times) * 1e3:.0f} ms  (target < 1 s)")
    viewer.close()


if __name__ == "__main__":
    main()
