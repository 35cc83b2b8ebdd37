"""Status summaries, recipient exports and dry-run preview files."""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from .models import Campaign, Contact, ContactList, RenderedContent, State

STATE_ORDER = [s.value for s in State]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Preview:
    """The first recipient of a language, as rendered and as sent."""

    language: str
    contact: Contact
    content: RenderedContent
    data: bytes


def status_lines(campaign: str, counts: Mapping[str, int], skipped: Mapping[str, int]) -> list[str]:
    """A small table: one line per state with its count, skipped broken down by reason."""
    lines = [f"campaign {campaign}"]
    total = sum(counts.values())
    for state in STATE_ORDER:
        if counts.get(state):
            lines.append(f"  {state:<9} {counts[state]:>7}")
            if state == State.SKIPPED:
                lines.extend(f"    {reason:<20} {n:>5}" for reason, n in sorted(skipped.items()))
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


def _headers(data: bytes) -> list[tuple[str, str]]:
    msg = message_from_bytes(data, policy=policy.default)
    return [(k, str(v)) for k, v in msg.items()]


def write_previews(
    folder: Path,
    campaign: Campaign,
    samples: Mapping[str, Preview],
    counts: Counter[tuple[str, str]],
    warnings: Iterable[str],
    contacts: ContactList,
) -> Path:
    """``<lang>.eml`` and ``<lang>.html`` per language and an ``index.html`` over them."""
    folder.mkdir(parents=True, exist_ok=True)
    e = html.escape
    sections = []
    for language, preview in sorted(samples.items()):
        (folder / f"{language}.eml").write_bytes(preview.data)
        (folder / f"{language}.html").write_text(preview.content.html, encoding="utf-8")
        header_rows = "".join(
            f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _headers(preview.data)
        )
        sections.append(
            f'<section id="{e(language)}"><h2>{e(language)}: {e(preview.content.subject)}</h2>'
            f"<p>Shown for {e(preview.contact.email)}. "
            f'<a href="{e(language)}.html">HTML</a> · <a href="{e(language)}.eml">.eml</a></p>'
            f"<table class=headers>{header_rows}</table>"
            f'<div class=frames><iframe title="desktop" src="{e(language)}.html" width=680 '
            f'height=900></iframe><iframe title="phone" src="{e(language)}.html" width=375 '
            f"height=900></iframe></div>"
            f"<h3>Plain text</h3><pre>{e(preview.content.text)}</pre></section>"
        )
    count_rows = "".join(
        f"<tr><td>{e(segment)}</td><td>{e(lang)}</td><td>{n}</td></tr>"
        for (segment, lang), n in sorted(counts.items())
    )
    reasons = Counter(r.reason.split(":")[0] for r in contacts.rejected)
    reject_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in sorted(reasons.items())
    )
    warning_items = "".join(f"<li>{e(w)}</li>" for w in warnings) or "<li>none</li>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {e(campaign.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
.frames{{display:flex;gap:16px;align-items:flex-start}}iframe{{border:1px solid #999}}
pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}</style></head>
<body><h1>Preview: {e(campaign.name)}</h1>
<p>{len(contacts.contacts)} recipients from {contacts.rows_read} rows read; nothing was sent.</p>
<h2>Recipients by segment and language</h2>
<table><tr><th>segment</th><th>language</th><th>count</th></tr>{count_rows}</table>
<h2>Rows not sent to</h2><table><tr><th>reason</th><th>rows</th></tr>{reject_rows}</table>
<h2>Warnings</h2><ul>{warning_items}</ul>
{"".join(sections)}
</body></html>
"""
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
