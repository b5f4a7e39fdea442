"""The library never imports napari or Qt (DESIGN.md, layers of the code)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "skinseg"
FORBIDDEN = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"}
LIBRARY_FILES = sorted(p for p in SRC.rglob("*.py") if "_napari" not in p.relative_to(SRC).parts)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_files_found():
    assert len(LIBRARY_FILES) > 5


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_library_module_imports_no_gui(path):
    bad = _imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}; only skinseg._napari may"


def test_library_import_loads_no_gui(tmp_path):
    """Importing every library module in a fresh interpreter leaves napari/Qt unloaded."""
    import subprocess
    import sys

    modules = [
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in LIBRARY_FILES
        if p.name != "__main__.py"  # importing it runs the command line
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(r for r in {sorted(FORBIDDEN)!r} if r in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
