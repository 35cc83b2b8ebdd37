"""Status summaries, recipient exports and the files a user asks for (rejects)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models import Rejected, State

STATE_ORDER = [s.value for s in State]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def status_lines(
    campaign: str,
    counts: Mapping[str, int],
    skipped: Mapping[str, int],
    bounces: Mapping[str, int] | None = None,
) -> list[str]:
    """A small table: one line per state with its count, skipped broken down by reason and
    bounced by class (``bounces``: class -> rows, complaints included)."""
    lines = [f"campaign {campaign}"]
    total = sum(counts.values())
    for state in STATE_ORDER:
        if counts.get(state):
            lines.append(f"  {state:<9} {counts[state]:>7}")
            if state == State.SKIPPED:
                lines.extend(f"    {reason:<20} {n:>5}" for reason, n in sorted(skipped.items()))
            if state == State.BOUNCED:
                lines.extend(
                    f"    {kind:<20} {(bounces or {}).get(kind, 0):>5}"
                    for kind in ("hard", "soft", "block")
                    if (bounces or {}).get(kind)
                )
    lines.append(f"  {'total':<9} {total:>7}")
    return lines


def formula_safe(value: object) -> object:
    """Neutralise cells a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export(rows: Iterable[Mapping[str, Any]], fmt: str) -> str:
    """Recipient rows as CSV (formula-safe) or JSON."""
    items = list(rows)
    if fmt == "json":
        return json.dumps(items, ensure_ascii=False, indent=1) + "\n"
    buffer = io.StringIO()
    if items:
        writer = csv.DictWriter(buffer, fieldnames=list(items[0]))
        writer.writeheader()
        for item in items:
            writer.writerow({k: formula_safe(v) for k, v in item.items()})
    return buffer.getvalue()


def write_file(path: Path, data: str | bytes, what: str) -> None:
    """Write a file the user asked for; a path that cannot be written is one clear line."""
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write ({exc.strerror or exc})") from None


def write_rejects(path: Path, rejected: Iterable[Rejected]) -> int:
    """Rejected rows as CSV (file, row, address, reason), formula-safe; returns the count."""
    rows = [
        {"file": r.source, "row": r.row, "email": r.email, "reason": r.reason} for r in rejected
    ]
    text = export(rows, "csv") if rows else "file,row,email,reason\n"
    write_file(path, text, "--rejects")
    return len(rows)
