"""The bounce corpus (tests/data/bounces) and its hand-checked manifest."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "data" / "bounces"


@dataclass
class Expected:
    """What a person reading the message decided: its kind, and each recipient's class."""

    kind: str
    classes: dict[str, str] = field(default_factory=dict)
    reading: str = ""


def manifest() -> dict[str, Expected]:
    """file (relative to ROOT) -> Expected, from expected.csv (one row per recipient)."""
    found: dict[str, Expected] = {}
    with (ROOT / "expected.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            entry = found.setdefault(row["file"], Expected(row["kind"], reading=row["reading"]))
            if row["class"]:
                entry.classes[row["address"]] = row["class"]
    return found
