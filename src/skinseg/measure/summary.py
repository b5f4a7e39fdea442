"""Statistics of measurement maps, and export of an epidermis measurement to CSV and JSON."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skinseg.io.atomic import atomic_write
from skinseg.io.tables import write_table_csv

if TYPE_CHECKING:
    from skinseg.measure.thickness import EpidermisMeasurement

STAT_NAMES = ("mean", "sd", "median", "p5", "p95", "min", "max")
"""Statistics of :func:`describe`, besides ``n`` and ``coverage``."""


def describe(values: np.ndarray, axis: int | None = None) -> dict[str, Any]:
    """Statistics of the finite values: n, coverage, mean, SD, median, P5, P95, min, max.

    NaN marks an unmeasured value: it counts against ``coverage`` and is left out of the
    statistics. With nothing measured every statistic is NaN (no error, no warning).

    Parameters
    ----------
    values
        Array of measurements.
    axis
        Axis to reduce (``None``: all values together).

    Returns
    -------
    dict
        ``n`` (count of finite values), ``coverage`` (``n`` ÷ count of values), and
        :data:`STAT_NAMES`; ``sd`` is the sample SD (``ddof=1``, NaN for ``n < 2``).
        Scalars when ``axis`` is None, else arrays over the remaining axes.
    """
    v = np.asarray(values, dtype=np.float64)
    n = np.isfinite(v).sum(axis=axis)
    size = v.size if axis is None else v.shape[axis]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p5, median, p95 = np.nanpercentile(v, [5, 50, 95], axis=axis)
        out = {
            "n": n,
            "coverage": n / size if size else np.float64("nan"),
            "mean": np.nanmean(v, axis=axis),
            "sd": np.nanstd(v, axis=axis, ddof=1),
            "median": median,
            "p5": p5,
            "p95": p95,
            "min": np.nanmin(v, axis=axis) if size else np.float64("nan"),
            "max": np.nanmax(v, axis=axis) if size else np.float64("nan"),
        }
    if axis is None:
        return {k: _plain(x) for k, x in out.items()}
    return out


def _plain(x: Any) -> Any:
    """A numpy scalar as a plain int/float (JSON- and CSV-friendly)."""
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def table_rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Columns of equal length → list of row dicts with plain Python values."""
    names = list(columns)
    arrays = [np.asarray(columns[k]).tolist() for k in names]
    return [dict(zip(names, row)) for row in zip(*arrays)]


def per_ascan_columns(m: EpidermisMeasurement) -> dict[str, np.ndarray]:
    """One row per A-scan: B-scan and A-scan index, depths and thicknesses in µm."""
    n_bscans, width = m.thickness_um.shape
    bscan, ascan = np.divmod(np.arange(n_bscans * width), width)
    return {
        "bscan": bscan,
        "ascan": ascan,
        "surface_depth_um": m.surface_depth_um.ravel(),
        "dej_depth_um": m.dej_depth_um.ravel(),
        "thickness_um": m.thickness_um.ravel(),
        "sc_thickness_um": m.sc_thickness_um.ravel(),
    }


def _json_safe(x: Any) -> Any:
    """Replace NaN/inf by None (JSON has no NaN) throughout nested dicts and lists."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    x = _plain(x)
    return None if isinstance(x, float) and not math.isfinite(x) else x


def measurement_to_dict(m: EpidermisMeasurement) -> dict[str, Any]:
    """Summary, per-B-scan table and settings as a JSON-ready dict (NaN → null)."""
    return _json_safe(
        {
            "summary": m.summary,
            "per_bscan": m.per_bscan,
            "map_pixel_size_um": list(m.map_pixel_size_um),
            "map_shape": list(m.thickness_um.shape),
        }
    )


def write_measurement_json(m: EpidermisMeasurement, path: str | Path) -> Path:
    """Write :func:`measurement_to_dict` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(measurement_to_dict(m), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


def write_measurement(
    m: EpidermisMeasurement, out_dir: str | Path, *, per_ascan: bool = False
) -> dict[str, Path]:
    """Write ``summary.csv``, ``per_bscan.csv``, ``measurement.json`` (and ``per_ascan.csv``).

    Parameters
    ----------
    m
        The measurement.
    out_dir
        Folder to write into; made if missing.
    per_ascan
        Also write one row per A-scan (large: n_bscans × width rows).

    Returns
    -------
    dict
        File kind (``summary``, ``per_bscan``, ``json``, ``per_ascan``) → path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"summary": out / "summary.csv", "per_bscan": out / "per_bscan.csv"}
    write_table_csv(written["summary"], [m.summary])
    write_table_csv(written["per_bscan"], m.per_bscan)
    if per_ascan:
        written["per_ascan"] = out / "per_ascan.csv"
        write_table_csv(written["per_ascan"], per_ascan_columns(m))
    written["json"] = write_measurement_json(m, out / "measurement.json")
    return written
