"""Canonical label tables, one per workflow (DESIGN.md, "Labels").

A :class:`ClassTable` is what a labels array means: value → name and colour. It
travels with label files (OME-TIFF description) and model files (JSON header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LabelClass:
    """One class: integer value, name, and display colour as ``#rrggbb``."""

    value: int
    name: str
    color: str


@dataclass(frozen=True)
class ClassTable:
    """An ordered table of label classes; value 0 is background."""

    name: str
    classes: tuple[LabelClass, ...]

    def __post_init__(self) -> None:
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values):
            raise ValueError(f"class table {self.name!r} repeats a value: {values}")

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def value_of(self, name: str) -> int:
        """Value of the class called ``name``."""
        for c in self.classes:
            if c.name == name:
                return c.value
        raise KeyError(f"class table {self.name!r} has no class {name!r}; it has {self.names}")

    def name_of(self, value: int) -> str:
        """Name of the class with ``value``."""
        for c in self.classes:
            if c.value == value:
                return c.name
        raise KeyError(f"class table {self.name!r} has no value {value}; it has {self.values}")

    def colors_rgba(self) -> dict[int, tuple[float, float, float, float]]:
        """Colour per value as RGBA floats in [0, 1]; background is transparent."""
        out = {}
        for c in self.classes:
            r, g, b = (int(c.color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))
            out[c.value] = (r, g, b, 0.0 if c.value == 0 else 1.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": [{"value": c.value, "name": c.name, "color": c.color} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassTable:
        try:
            classes = tuple(
                LabelClass(int(c["value"]), str(c["name"]), str(c["color"])) for c in d["classes"]
            )
            return cls(str(d["name"]), classes)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a valid class table: {d!r} ({e})") from e


OCT_CLASSES = ClassTable(
    "oct-layers",
    (
        LabelClass(0, "background", "#000000"),
        LabelClass(1, "glass", "#9ecae1"),
        LabelClass(2, "gel", "#3182bd"),
        LabelClass(3, "stratum corneum", "#fdd835"),
        LabelClass(4, "epidermis", "#e6550d"),
        LabelClass(5, "DEJ", "#d62728"),
        LabelClass(6, "dermis", "#31a354"),
    ),
)
"""OCT skin layers, in anatomical order from the top down (value order = depth order)."""

TISSUE_CLASSES = ClassTable(
    "biopsy-tissue",
    (
        LabelClass(0, "background", "#000000"),
        LabelClass(1, "epidermis", "#e6550d"),
        LabelClass(2, "dermis", "#31a354"),
    ),
)
"""Skin-biopsy tissue classes."""

NERVE_CLASSES = ClassTable(
    "biopsy-nerves",
    (LabelClass(0, "background", "#000000"), LabelClass(1, "nerve", "#ff00ff")),
)
"""Nerve fibres, a 0/1 labels layer of their own."""

TABLES = {t.name: t for t in (OCT_CLASSES, TISSUE_CLASSES, NERVE_CLASSES)}
