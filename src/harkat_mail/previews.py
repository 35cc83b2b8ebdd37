"""The dry run's preview page: what each variant looks like in an inbox and opened, full height.

``index.html`` shows, per variant (and per member asked for with ``--preview-for``): the inbox
line (sender name, subject, preheader), the warnings, the headers, the message drawn at
desktop and phone widths at its full height (each frame is sized to its content once drawn),
and the plain-text part. ``<name>.html`` and ``<name>.eml`` sit beside it.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.utils import parseaddr
from html.parser import HTMLParser
from pathlib import Path

from .errors import ConfigError
from .models import (
    Campaign,
    Contact,
    ContactList,
    RenderedContent,
    RenderedLetter,
    reason_label,
)
from .reports import write_file

PREHEADER_CHARS = 110  # about what a phone's inbox shows after the subject
# Frames start this tall, then take their content's height once drawn (no script: no resize).
FRAME_START = 900
_FIT = (
    "this.style.height=(this.contentDocument.documentElement.scrollHeight+4)+'px';"
    "this.dataset.fitted=this.style.height"
)


@dataclass
class Preview:
    """One variant (or one chosen member): the message as rendered and sent, its count."""

    language: str
    segment: str
    contact: Contact
    content: RenderedContent
    data: bytes
    warnings: list[str] = field(default_factory=list)
    count: int = 0
    name: str = ""  # file stem: the language for a variant, member-N for a chosen member
    chosen: bool = False  # rendered because --preview-for asked for this member
    letter: RenderedLetter | None = None  # the letter this member's button opens

    @property
    def stem(self) -> str:
        return self.name or self.language


class _Preheader(HTMLParser):
    """The text of the first element whose class names it the preheader, and the body's text."""

    _HIDDEN = ("head", "style", "script", "title")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # inside the preheader element
        self.hidden = 0  # inside an element whose text is never shown
        self.parts: list[str] = []
        self.body: list[str] = []
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        if tag in ("p", "br", "div", "h1", "h2", "h3", "li", "td"):
            self.body.append(" ")
        classes = (dict(attrs).get("class") or "").split()
        if self.depth:
            self.depth += 1
        elif not self.found and "preheader" in classes:
            self.depth, self.found = 1, True

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self.hidden:
            self.hidden -= 1
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)
        elif not self.hidden and sum(map(len, self.body)) < 4 * PREHEADER_CHARS:
            self.body.append(data)


def preheader(content: RenderedContent) -> str:
    """The inbox's grey line: an explicit preheader, else the first text of the body."""
    parser = _Preheader()
    parser.feed(content.html)
    text = " ".join("".join(parser.parts).split()) if parser.found else ""
    if not text:
        text = " ".join("".join(parser.body).split())
    if len(text) > PREHEADER_CHARS:
        text = text[:PREHEADER_CHARS].rsplit(" ", 1)[0] + "…"
    return text


def _headers(data: bytes) -> list[tuple[str, str]]:
    msg = message_from_bytes(data, policy=policy.default)
    return [(k, str(v)) for k, v in msg.items()]


def _frame(preview: Preview, label: str, width: int) -> str:
    e = html.escape
    return (
        f'<figure><figcaption>{label} ({width} px)</figcaption>'
        f'<iframe title="{e(preview.stem)} {label.lower()}" class="message" width="{width}" '
        f'height="{FRAME_START}" scrolling="no" sandbox="allow-same-origin" onload="{_FIT}" '
        f'srcdoc="{e(preview.content.html, quote=True)}"></iframe></figure>'
    )


def _section(preview: Preview, campaign: Campaign) -> str:
    e = html.escape
    header_rows = "".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _headers(preview.data)
    )
    warnings = "".join(f"<li>{e(w)}</li>" for w in preview.warnings) or '<li class="ok">none</li>'
    sender = parseaddr(campaign.sender_for(preview.language))
    who = e(preview.contact.display_name or preview.contact.email)
    heading = (
        f"{e(preview.language)} for {who} ({e(preview.contact.source)} row {preview.contact.row})"
        if preview.chosen
        else f"{e(preview.segment)} / {e(preview.language)}: {preview.count} recipients"
    )
    return f"""<section id="{e(preview.stem)}" class="variant">
<h2>{heading}</h2>
<div class="inbox" title="How the message lists in an inbox">
<span class="from">{e(sender[0] or sender[1])}</span>
<span class="subject">{e(preview.content.subject)}</span>
<span class="preheader">{e(preheader(preview.content))}</span></div>
<p class="subject"><strong>Subject:</strong> {e(preview.content.subject)}</p>
<p>Shown for {e(preview.contact.email)}. <a href="{e(preview.stem)}.html">HTML</a> ·
<a href="{e(preview.stem)}.eml">.eml</a></p>
<h3>Warnings</h3><ul class="warnings">{warnings}</ul>
<details><summary>Headers</summary><table class="headers">{header_rows}</table></details>
<div class="frames">{_frame(preview, "Desktop", 680)}{_frame(preview, "Phone", 375)}</div>
<h3>Plain text</h3><pre>{e(preview.content.text)}</pre>
{letter_block(preview.letter, preview.stem)}
</section>"""


def letter_block(letter: RenderedLetter | None, name: str) -> str:
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
    return f"""<div class="letter" id="letter-{e(name)}">
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


def _left_note(left: int | None, total: int) -> str:
    if left is None:
        return "Nothing has been sent yet, and this dry run sent nothing."
    return (
        f"<strong>{left} left to send</strong> of {total}"
        + (f" (the send log has a verdict for the other {total - left})" if left < total else "")
        + "; this dry run sent nothing."
    )


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222;background:#fff}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.frames{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
iframe{border:1px solid #999;display:block}figure{margin:0}
.inbox{border:1px solid #ccc;border-radius:6px;padding:8px 12px;max-width:656px;background:#fafafa}
.inbox span{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.inbox .from,.inbox .subject{font-weight:bold}.inbox .preheader{color:#666}
.warnings li{color:#8a1c00}.warnings li.ok{color:#2f6f3e}
pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"""


def write_previews(
    folder: Path,
    campaign: Campaign,
    previews: Iterable[Preview],
    contacts: ContactList,
    left: int | None = None,
) -> Path:
    """``<name>.eml`` and ``<name>.html`` per preview and an ``index.html`` over them.

    ``left``: how many members the send log says are still to be sent (None: no log yet).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"previews {folder}: cannot create ({exc.strerror or exc})") from None
    e = html.escape
    ordered = sorted(previews, key=lambda p: (p.chosen, p.segment, p.language, p.stem))
    for preview in ordered:
        write_file(folder / f"{preview.stem}.eml", preview.data, "preview")
        write_file(folder / f"{preview.stem}.html", preview.content.html, "preview")
    count_rows = "".join(
        f"<tr><td>{e(p.segment)}</td><td>{e(p.language)}</td><td>{p.count}</td>"
        f"<td>{len(p.warnings)}</td></tr>"
        for p in ordered
        if not p.chosen
    )
    reasons = Counter(reason_label(r.reason) for r in contacts.rejected)
    reject_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in sorted(reasons.items())
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {e(campaign.name)}</title>
<style>{_STYLE}</style></head>
<body><h1>Preview: {e(campaign.name)}</h1>
<p>{len(contacts.contacts)} recipients from {contacts.rows_read} rows read.
{_left_note(left, len(contacts.contacts))}</p>
<p>Purpose: {e(campaign.purpose)}. {_purpose_note(campaign)}</p>
<h2>Recipients by segment and language</h2>
<table><tr><th>segment</th><th>language</th><th>recipients</th><th>warnings</th></tr>
{count_rows}</table>
<h2>Rows not sent to</h2><table><tr><th>reason</th><th>rows</th></tr>{reject_rows}</table>
{"".join(_section(p, campaign) for p in ordered)}
</body></html>
"""
    index = folder / "index.html"
    write_file(index, page, "preview")
    return index
