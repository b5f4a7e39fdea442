"""Long work as generators (DESIGN.md, "Long work").

A long library function is a generator that yields ``(done, total, message)`` tuples
and *returns* its result; closing the generator stops the work cleanly. :func:`run`
drives one to the end for callers that want only the result, optionally reporting
each step (the CLI passes a progress bar).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")

Step = tuple[int, int, str]
ProgressGenerator = Generator[Step, None, T]


def run(work: ProgressGenerator[T], report: Callable[[int, int, str], None] | None = None) -> T:
    """Drive ``work`` to the end and return its result; ``report(done, total, message)`` per step."""
    while True:
        try:
            done, total, message = next(work)
        except StopIteration as stop:
            return stop.value
        if report is not None:
            report(done, total, message)


def offset(work: ProgressGenerator[T], start: int, total: int) -> ProgressGenerator[T]:
    """Re-number a sub-task's steps as steps ``start + done`` of ``total``; returns its result."""
    with contextlib.closing(work):
        while True:
            try:
                done, _, message = next(work)
            except StopIteration as stop:
                return stop.value
            yield start + done, total, message


def cli_bar(desc: str, unit: str = "step") -> Callable[[int, int, str], None]:
    """A ``report`` callback drawing a tqdm progress bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=f" {unit}", leave=True, dynamic_ncols=True)

    def report(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return report
