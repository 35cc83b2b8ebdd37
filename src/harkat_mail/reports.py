"""Status summaries, recipient exports and dry-run preview files."""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ConfigError
from .models import (
    Campaign,
    Contact,
    ContactList,
    Rejected,
    RenderedContent,
    RenderedLetter,
    State,
    reason_label,
)

STATE_ORDER = [s.value for s in State]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Preview:
    """One segment x language variant: its first recipient as rendered and sent, its count."""

    language: str
    segment: str
    contact: Contact
    content: RenderedContent
    data: bytes
    warnings: list[str] = field(default_factory=list)
    count: int = 0
    letter: RenderedLetter | None = None  # the letter this member's button opens


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
    table += [("Language", lang, n) for lang, n in sorted(languages.items())]
    outside = sum(1 for r in rows if str(r.get("reason", "")).startswith("outside segment"))
    table.append(("Segment", campaign.contacts.segment_name, len(planned)))
    if outside:
        table.append(("Segment", "outside the segment", outside))
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


def _headers(data: bytes) -> list[tuple[str, str]]:
    msg = message_from_bytes(data, policy=policy.default)
    return [(k, str(v)) for k, v in msg.items()]


def _section(preview: Preview) -> str:
    e = html.escape
    lang = e(preview.language)
    header_rows = "".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _headers(preview.data)
    )
    warnings = "".join(f"<li>{e(w)}</li>" for w in preview.warnings) or '<li class="ok">none</li>'
    return f"""<section id="{lang}" class="variant">
<h2>{e(preview.segment)} / {lang}: {preview.count} recipients</h2>
<p class="subject"><strong>Subject:</strong> {e(preview.content.subject)}</p>
<p>Shown for {e(preview.contact.email)}. <a href="{lang}.html">HTML</a> ·
<a href="{lang}.eml">.eml</a></p>
<h3>Warnings</h3><ul class="warnings">{warnings}</ul>
<details><summary>Headers</summary><table class="headers">{header_rows}</table></details>
<div class="frames">
<figure><figcaption>Desktop (680 px)</figcaption>
<iframe title="{lang} desktop" src="{lang}.html" width="680" height="900"></iframe></figure>
<figure><figcaption>Phone (375 px)</figcaption>
<iframe title="{lang} phone" src="{lang}.html" width="375" height="900"></iframe></figure>
</div>
<h3>Plain text</h3><pre>{e(preview.content.text)}</pre>
{letter_block(preview.letter, preview.language)}
</section>"""


def letter_block(letter: RenderedLetter | None, language: str) -> str:
    """The letter a variant's ``letter_mailto`` button opens: addresses, subject, text, size."""
    if letter is None:
        return ""
    e = html.escape
    cc = f"<br><strong>Cc:</strong> {e(', '.join(letter.cc))}" if letter.cc else ""
    shortened = (
        f"<p>Longer than the link allows, so shortened at a paragraph; the full text "
        f"(publish it at <code>letter.full_url</code>):</p><pre>{e(letter.full_body)}</pre>"
        if letter.shortened
        else ""
    )
    return f"""<div class="letter" id="letter-{e(language)}">
<h3>Letter</h3>
<p><strong>To:</strong> {e(letter.to)}{cc}<br><strong>Subject:</strong> {e(letter.subject)}<br>
The link is {len(letter.mailto):,} characters. <a href="{e(letter.mailto)}">Open it</a></p>
<pre>{e(letter.body)}</pre>
{shortened}</div>"""


def _purpose_note(campaign: Campaign) -> str:
    checked = "sender name, mailing address, contact and a working unsubscribe link"
    if campaign.purpose == "commercial":
        return (
            f"CASL: only members with a consent basis are included; every variant shows the "
            f"{checked} (checked before this preview was written)."
        )
    return f"No consent basis needed; variants missing the {checked} are warned below."


def write_previews(
    folder: Path, campaign: Campaign, previews: Iterable[Preview], contacts: ContactList
) -> Path:
    """``<lang>.eml`` and ``<lang>.html`` per variant and an ``index.html`` over them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"previews {folder}: cannot create ({exc.strerror or exc})") from None
    e = html.escape
    ordered = sorted(previews, key=lambda p: (p.segment, p.language))
    for preview in ordered:
        write_file(folder / f"{preview.language}.eml", preview.data, "preview")
        write_file(folder / f"{preview.language}.html", preview.content.html, "preview")
    count_rows = "".join(
        f"<tr><td>{e(p.segment)}</td><td>{e(p.language)}</td><td>{p.count}</td>"
        f"<td>{len(p.warnings)}</td></tr>"
        for p in ordered
    )
    reasons = Counter(reason_label(r.reason) for r in contacts.rejected)
    reject_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in sorted(reasons.items())
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {e(campaign.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222;background:#fff}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
.frames{{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}}
iframe{{border:1px solid #999}}figure{{margin:0}}
.warnings li{{color:#8a1c00}}.warnings li.ok{{color:#2f6f3e}}
pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}</style></head>
<body><h1>Preview: {e(campaign.name)}</h1>
<p>{len(contacts.contacts)} recipients from {contacts.rows_read} rows read; nothing was sent.</p>
<p>Purpose: {e(campaign.purpose)}. {_purpose_note(campaign)}</p>
<h2>Recipients by segment and language</h2>
<table><tr><th>segment</th><th>language</th><th>recipients</th><th>warnings</th></tr>
{count_rows}</table>
<h2>Rows not sent to</h2><table><tr><th>reason</th><th>rows</th></tr>{reject_rows}</table>
{"".join(_section(p) for p in ordered)}
</body></html>
"""
    index = folder / "index.html"
    write_file(index, page, "preview")
    return index
