"""Atomic file writes: a reader never sees a half-written file (DESIGN.md, "Errors")."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_NEW_FILE_MODE = 0o644


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", **open_kw: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success move it onto ``path``.

    Parameters
    ----------
    path
        Final file. Its folder must exist.
    mode
        ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"`` (binary).
    **open_kw
        Passed to :func:`open` (e.g. ``newline=""`` for CSV).

    Yields
    ------
    The open temporary file. If the block raises, it is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the usual mode of a new or kept file
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE)
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
