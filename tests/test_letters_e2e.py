"""Letters members can send, end to end: the sample appeal sent through real SMTP by the CLI."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from click.testing import CliRunner

from harkat_mail.cli import main

MINISTER = "minister@ps-sp.example.org"
SUBJECTS = {
    "en": "Please let Mohamed Harkat stay in Canada",
    "fr": "Permettez à Mohamed Harkat de rester au Canada",
}
BUTTONS = {"en": "Write to the Minister", "fr": "Écrivez au ministre"}
GREETINGS = {"en": "Dear Minister,", "fr": "Monsieur le Ministre,"}
_BUTTON = re.compile(r'<a class="button"[^>]*\bhref="([^"]*)"[^>]*>([^<]*)</a>')


def _send(project: Path, port: int) -> str:
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def _members(project: Path) -> dict[str, dict[str, str]]:
    """The sample list's rows by address, read independently of harkat_mail."""
    rows = csv.DictReader((project.parent.parent / "lists" / "members.csv").open())
    return {r["email"].strip().lower(): r for r in rows}


def _letter(href: str) -> tuple[str, dict[str, str]]:
    """What a mail client opens from the button: the recipient and the prefilled fields."""
    parts = urlsplit(href)
    assert parts.scheme == "mailto"
    return unquote(parts.path), dict(parse_qsl(parts.query))


def _first_button(message_html: str) -> tuple[str, str]:
    match = _BUTTON.search(message_html)
    assert match is not None
    return html.unescape(match.group(1)), match.group(2)


def test_first_button_opens_the_members_signed_letter(project: Path, smtp_server) -> None:
    """Every member's first button is a mailto: link to the Minister, in their language,
    signed with their name and local, under 2,000 characters; the text part has it too."""
    server, handler = smtp_server()
    _send(project, server.port)
    members = _members(project)
    seen = set()
    assert len(handler.messages) > 100
    for delivered in handler.messages:
        msg = delivered.message
        row = members[delivered.rcpt_tos[0].lower()]
        language = msg["Content-Language"]
        seen.add(language)
        body_html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        href, label = _first_button(body_html)
        assert label == BUTTONS[language]
        assert len(href) <= 2000
        to, fields = _letter(href)
        assert to == MINISTER and fields["cc"] == "solidarity@cupw.example.org"
        assert fields["subject"] == SUBJECTS[language]
        name = " ".join(f"{row['first_name']} {row['last_name']}".split())
        local = row["local"].strip()
        signed = {"en": f"CUPW Local {local}", "fr": f"STTP, section locale {local}"}
        signature = f"{name}\r\n{signed[language]}".lower()  # the list's cleaning fixes case
        assert fields["body"].lower().endswith(signature), fields["body"][-80:]
        assert fields["body"].startswith(GREETINGS[language])
        assert "Read the full letter" not in fields["body"]  # the sample letters fit whole
        colon = {"en": ": ", "fr": "\u202f: "}[language]  # French: a no-break space before ':'
        assert f"{BUTTONS[language]}{colon}{href}" in text.splitlines()  # the text part offers it
    assert seen == {"en", "fr"}


def test_long_letter_is_shortened_at_a_paragraph(project: Path, smtp_server) -> None:
    """A letter too long for a link keeps whole paragraphs, points at the full text, and
    keeps its signature; the link stays under 2,000 characters."""
    letter = project.parent.parent / "templates" / "harkat-appeal" / "letter" / "en.txt"
    paragraphs = [f"Paragraph {n}: " + " ".join(["solidarity"] * 30) + "." for n in range(1, 9)]
    letter.write_text(
        "Dear Minister,\n\n" + "\n\n".join(paragraphs) + "\n\nSincerely,\n{{ display_name }}\n",
        encoding="utf-8",
    )
    server, handler = smtp_server()
    _send(project, server.port)
    english = [m.message for m in handler.messages if m.message["Content-Language"] == "en"]
    assert english
    for msg in english:
        href, _ = _first_button(msg.get_body(("html",)).get_content())
        assert len(href) <= 2000
        body = _letter(href)[1]["body"]
        parts = body.split("\r\n\r\n")
        assert parts[0] == "Dear Minister,"
        kept = parts[1:-2]
        assert 1 <= len(kept) < len(paragraphs) and kept == paragraphs[: len(kept)]
        assert parts[-2] == "Read the full letter: https://harkat.example.org/letter"
        assert parts[-1].startswith("Sincerely,\r\n") and len(parts[-1]) > len("Sincerely,\r\n")


def test_dry_run_preview_shows_each_variants_letter(project: Path) -> None:
    """The dry-run preview page shows, per language, the letter's recipient, subject and text."""
    result = CliRunner().invoke(main, ["send", str(project), "--dry-run"])
    assert result.exit_code == 0, result.output
    page = (project.parent.parent / "previews" / "sept2018" / "index.html").read_text()
    blocks = re.findall(r'<div class="letter" id="letter-(\w+)">(.*?)</div>', page, re.S)
    assert [language for language, _ in blocks] == ["en", "fr"]
    for language, block in blocks:
        block = html.unescape(block)
        assert MINISTER in block and SUBJECTS[language] in block
        assert GREETINGS[language] in block
        assert re.search(r"The link is [\d,]+ characters", block)
