"""Status summaries, recipient exports and the files a user asks for (rejects)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ConfigError
from .models import Campaign, Rejected, State, reason_label

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
    """Rejected rows as CSV (file, row, member id, name, address, reason), formula-safe.

    The row is the spreadsheet's (header = row 1); returns the count.
    """
    rows = [
        {
            "file": r.source,
            "row": r.row,
            "member_id": r.member_id,
            "name": r.name,
            "email": r.email,
            "reason": r.reason,
        }
        for r in rejected
    ]
    text = export(rows, "csv") if rows else "file,row,member_id,name,email,reason\n"
    write_file(path, text, "--rejects")
    return len(rows)


TIME_COLUMNS = ("next_attempt_at", "created_at", "updated_at")
# What each state means to someone reading the report, not running the tool.
STATE_WORDS = {
    "pending": "not sent yet",
    "sending": "being sent",
    "sent": "delivered to the relay",
    "deferred": "to be retried",
    "failed": "failed",
    "unknown": "unknown (the run stopped mid-send)",
    "skipped": "not sent to",
    "bounced": "bounced",
    "complained": "marked as spam",
}


def zone_of(name: str) -> tzinfo | None:
    """The campaign's time zone; None is the machine's own."""
    return ZoneInfo(name) if name else None


def iso_time(seconds: float | None, zone: tzinfo | None) -> str:
    """A Unix time as ISO 8601 to the second with its offset, in ``zone``; "" for none."""
    if seconds is None:
        return ""
    moment = datetime.fromtimestamp(float(seconds), tz=UTC)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def readable_rows(
    rows: Iterable[Mapping[str, Any]], zone: tzinfo | None, names: Mapping[str, str]
) -> Iterator[dict[str, Any]]:
    """Send-log rows with ISO times and the member's name after the member id."""
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            out[key] = iso_time(value, zone) if key in TIME_COLUMNS else value
            if key == "member_id":
                out["name"] = names.get(str(row.get("key", "")), "")
        yield out


LANGUAGE_HEADING = "Language (members sent to or still to send)"
SEGMENT_HEADING = "Segment (members sent to or still to send)"


def summary_table(
    campaign: Campaign, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, int]]:
    """(section, item, members): counts per state, per language, per segment, per reason."""
    table: list[tuple[str, str, int]] = [("Members", "in the send log", len(rows))]
    states = Counter(str(r["state"]) for r in rows)
    order = [*STATE_ORDER, *sorted(set(states) - set(STATE_ORDER))]
    table += [("State", STATE_WORDS.get(s, s), states[s]) for s in order if states[s]]
    planned = [r for r in rows if r["state"] != State.SKIPPED]
    languages = Counter(str(r.get("language") or "?") for r in planned)
    # Languages and the segment count the members sent to or to send (skipped rows have
    # neither a message nor, often, a usable language); the headings say so.
    table += [(LANGUAGE_HEADING, lang, n) for lang, n in sorted(languages.items())]
    outside = sum(1 for r in rows if str(r.get("reason", "")).startswith("outside segment"))
    table.append((SEGMENT_HEADING, campaign.contacts.segment_name, len(planned)))
    if outside:
        table.append((SEGMENT_HEADING, "outside the segment (not sent to)", outside))
    reasons = Counter(
        reason_label(str(r.get("reason", ""))) for r in rows if r["state"] == State.SKIPPED
    )
    table += [("Not sent to, because", why, n) for why, n in sorted(reasons.items())]
    return table


def summary_text(
    campaign: Campaign, rows: Sequence[Mapping[str, Any]], zone: tzinfo | None
) -> str:
    """The summary a union executive reads: plain words, one count per line."""
    now = datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")
    lines = [f"Campaign {campaign.name} ({campaign.purpose}), report of {now}"]
    section = ""
    for part, item, count in summary_table(campaign, rows):
        if part != section:
            section = part
            lines.append(f"{part}:")
        lines.append(f"  {item:<40} {count:>8,}")
    sent = [r["updated_at"] for r in rows if r["state"] == State.SENT and r.get("updated_at")]
    if sent:
        first, last = iso_time(min(sent), zone), iso_time(max(sent), zone)
        lines.append(f"First delivered {first}, last {last}")
    return "\n".join(lines) + "\n"
