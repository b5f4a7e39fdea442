"""Measurement tables as CSV, written atomically (:mod:`skinseg.io.atomic`)."""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinseg.errors import SkinsegInputError
from skinseg.io.atomic import atomic_write


def _cell(value: Any) -> Any:
    """CSV text for one value: NaN → empty, floats in their shortest round-trip form."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return "" if math.isnan(value) else str(value)  # str(np.float32(0.1)) == "0.1"
    return "" if value is None else value


Rows = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
"""A list of row dicts, or a dict of equally long columns."""


def _as_rows(rows: Rows) -> list[Mapping[str, Any]]:
    if not isinstance(rows, Mapping):
        return list(rows)
    lengths = {k: len(v) for k, v in rows.items()}
    if len(set(lengths.values())) > 1:
        raise SkinsegInputError(
            f"table columns differ in length: {lengths}; give equally long columns."
        )
    n = next(iter(lengths.values()), 0)
    return [{k: v[i] for k, v in rows.items()} for i in range(n)]


def write_table_csv(path: str | Path, rows: Rows) -> Path:
    """Write a table as UTF-8 CSV, atomically.

    Parameters
    ----------
    path
        Output ``.csv`` file; its folder must exist.
    rows
        A list of dicts (one per row; the header is every key, in first-seen order, and
        a row missing a key gets an empty cell) or a dict of equally long columns.

    Returns
    -------
    The path written.

    Notes
    -----
    Floats are written in the shortest form that reads back to the same value in their
    own precision (``0.1``, ``1e-05``, ``inf``; a ``float32`` 0.1 is ``0.1``). NaN and
    None become empty cells, which spreadsheets and ``pandas.read_csv`` read back as
    missing. Booleans are ``True``/``False``.
    """
    table = _as_rows(rows)
    header = list(dict.fromkeys(k for row in table for k in row)) if table else list(rows)
    if not header:
        raise SkinsegInputError(f"{path}: no columns to write; the table is empty.")
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in table)
    return Path(path)
