"""What members see: a plain-text part that reads as plain text, the bilingual notice, and
French no-break spaces exactly where a phone must not break the line."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.render.plaintext import html_to_text
from harkat_mail.render.typography import NBSP, NNBSP, french_html, french_spaces, french_text

NO_MARKDOWN = re.compile(r"^#|\]\(|\*\*|^\s*\* |\\[.\-+#]", re.M)


def test_html_becomes_plain_text_not_markdown() -> None:
    """Headings underlined, links as `text: url`, bare addresses once, lists with '- '."""
    text = html_to_text(
        "<h1>Stop the deportation</h1><p>Read <a href='https://x.example.org/a_(b)?c=[1]'>the "
        "facts</a> or write to <a href='mailto:info@example.org'>info@example.org</a>.</p>"
        "<h2>Three ways</h2><ul><li>Write</li><li>Share</li></ul><ol><li>Give</li></ol>"
        "<p>1. Not a list - and a #hashtag</p><a href='https://x.example.org/'>"
        "https://x.example.org/</a><table><tr><td>left</td><td>right</td></tr></table>"
    )
    assert text == (
        "Stop the deportation\n====================\n\n"
        "Read the facts: https://x.example.org/a_(b)?c=[1] or write to info@example.org.\n\n"
        "Three ways\n----------\n\n  - Write\n  - Share\n\n  1. Give\n\n"
        "1. Not a list - and a #hashtag\n\nhttps://x.example.org/\n\nleft\nright\n"
    )


def _messages(project: Path, extra_yaml: str = "") -> dict[str, tuple[str, str]]:
    """The preview .eml of each variant after a dry run: (text part, HTML part)."""
    if extra_yaml:
        project.write_text(project.read_text(encoding="utf-8") + extra_yaml, encoding="utf-8")
    result = CliRunner().invoke(main, ["send", str(project), "--dry-run"])
    assert result.exit_code == 0, result.output
    folder = project.parent.parent / "previews" / "sept2018"
    out = {}
    for language in ("en", "fr"):
        msg = message_from_bytes((folder / f"{language}.eml").read_bytes(), policy=policy.default)
        parts = (msg.get_body(("plain",)), msg.get_body(("html",)))
        out[language] = (parts[0].get_content(), parts[1].get_content())  # type: ignore[union-attr]
    return out


def test_sample_text_part_reads_as_plain_text(project: Path) -> None:
    """The sample's text parts: underlined headings, `text: url` links, no Markdown syntax."""
    for language, (text, _) in _messages(project).items():
        lines = text.splitlines()
        assert not NO_MARKDOWN.search(text), (language, NO_MARKDOWN.search(text))
        title = "Mohamed Harkat must stay in Canada" if language == "en" else (
            "Mohamed Harkat doit rester au Canada"
        )
        assert lines[lines.index(title) + 1] == "=" * len(title)
        video = {"en": "Watch and share the video: ", "fr": f"Voir et partager la vidéo{NNBSP}: "}
        assert f"{video[language]}https://harkat.example.org/video" in lines
        assert "solidarity@cupw.example.org" in text and "mailto:solidarity" not in text


def test_combined_message_opens_with_a_notice_linking_to_the_other_language(
    project: Path,
) -> None:
    """bilingual: combined opens with "Le français suit" / "English follows", a link to the
    section in HTML, and the first line of the text part."""
    messages = _messages(project, "bilingual: combined\n")
    for first, notice, other in (("en", "Le français suit", "fr"), ("fr", "English follows", "en")):
        text, body = messages[first]
        assert text.splitlines()[0] == notice
        link = re.search(rf'<a href="#lang-{other}"[^>]*>([^<]*)</a>', body)
        assert link is not None and link.group(1) == notice
        assert body.index(notice) < body.index('class="card"')  # before the message itself
        assert body.count(f'id="lang-{other}"') == 1
        assert text.index(notice) < text.index("* * *")
    for part in messages["en"]:  # English first: only the French section gets no-break spaces
        english, french = part.split("* * *" if part is messages["en"][0] else "language-divider")
        assert f"25{NBSP}000{NBSP}$" in french and NBSP not in english and NNBSP not in english


def test_french_text_gets_no_break_spaces_english_and_urls_do_not() -> None:
    """U+202F before ; : ! ? and inside guillemets, U+00A0 in 25 000 $ and 15 %; only text
    nodes in French elements change, never attributes, styles, URLs or English sections."""
    assert french_spaces("Canada : oui ; non ! « vrai » ? 25 000 $, 1 000 000 et 15 %") == (
        f"Canada{NNBSP}: oui{NNBSP}; non{NNBSP}! «{NNBSP}vrai{NNBSP}»{NNBSP}? "
        f"25{NBSP}000{NBSP}$, 1{NBSP}000{NBSP}000 et 15{NBSP}%"
    )
    assert french_spaces("le 10 décembre 2002, 43 mois, K1A 0B1") == (
        "le 10 décembre 2002, 43 mois, K1A 0B1"
    )
    page = (
        '<html lang="fr"><head><style>a { color : red }</style></head><body>'
        '<p title="Canada : 25 000 $">Canada : <b>25 000</b> $</p>'
        '<a href="https://x.example.org/?q=a :b">Lien ?</a><!-- note : x -->'
        '<div lang="en"><p>English : 25 000 $</p><br><div>still English ?</div></div>'
        "<p>Encore : oui</p></body></html>"
    )
    assert french_html(page, "en") == (
        '<html lang="fr"><head><style>a { color : red }</style></head><body>'
        f'<p title="Canada : 25 000 $">Canada{NNBSP}: <b>25{NBSP}000</b>{NBSP}$</p>'
        f'<a href="https://x.example.org/?q=a :b">Lien{NNBSP}?</a><!-- note : x -->'
        '<div lang="en"><p>English : 25 000 $</p><br><div>still English ?</div></div>'
        f"<p>Encore{NNBSP}: oui</p></body></html>"
    )
    assert french_html("<p>English : 25 000 $</p>", "en") == "<p>English : 25 000 $</p>"
    combined = "Hello : en\n\n* * *\n\nBonjour : fr"
    assert french_text(combined, ["en", "fr"], "* * *") == f"Hello : en\n\n* * *\n\nBonjour{NNBSP}: fr"


def test_sample_french_message_keeps_amount_and_colon_together(project: Path) -> None:
    """The French appeal's "25 000 $" and "suffit :" hold no breakable space, in both parts;
    the English one and every link are unchanged."""
    messages = _messages(project)
    for part in messages["fr"]:
        assert f"25{NBSP}000{NBSP}$" in part and f"suffit{NNBSP}:" in part
        assert "25 000" not in part and " :" not in part.split("mailto:")[0]
    for part in messages["en"]:
        assert NBSP not in part and NNBSP not in part
    text, body = messages["fr"]
    assert f"Se désabonner des appels du syndicat{NNBSP}: https://" in text  # a link's colon too
    assert "syndicat: https" not in text and "appeals: https://" in messages["en"][0]
    href = re.search(r'<a class="button"[^>]*href="([^"]*)"', body)
    assert href is not None and "%C2%A0" not in href.group(1) and "%E2%80%AF" not in href.group(1)


def test_french_subject_keeps_canada_and_its_colon_together(project: Path, smtp_server) -> None:
    """Through real SMTP, the French subject reads "Canada\u202f: trois", alone and combined with
    the English one; the English subject keeps its plain ": "."""
    server, handler = smtp_server()
    args = ["send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes"]
    result = CliRunner().invoke(main, [*args, "--limit", "4"])
    assert result.exit_code == 0, result.output
    subjects = {str(m.message["Content-Language"]): str(m.message["Subject"]) for m in handler.messages}
    assert subjects["fr"] == f"Mohamed Harkat doit rester au Canada{NNBSP}: trois façons d’aider"
    assert subjects["en"] == "Mohamed Harkat must stay in Canada: three ways to help"
    for delivered in handler.messages:
        assert b"\n" not in delivered.message["Subject"].encode()
    project.write_text(
        project.read_text(encoding="utf-8").replace("name: sept2018", "name: combined")
        + "bilingual: combined\n",
        encoding="utf-8",
    )
    handler.messages.clear()
    result = CliRunner().invoke(main, [*args, "--limit", "2"])
    assert result.exit_code == 0, result.output
    combined = {str(m.message["Subject"]) for m in handler.messages}
    assert f"Mohamed Harkat doit rester au Canada{NNBSP}: trois façons d’aider / Mohamed " \
        "Harkat must stay in Canada: three ways to help" in combined
