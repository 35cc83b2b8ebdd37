"""The campaign's letter: checked when the YAML loads, rendered per member, safe in HTML."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from harkat_mail.campaign import load_campaign
from harkat_mail.errors import RenderError
from harkat_mail.models import Contact
from harkat_mail.render import Renderer

from ..campaign.helpers import edit, line_of, refused, run_cli


def _member(**fields: str) -> Contact:
    row = {"first_name": "Ana", "last_name": "Roy", "local": "12", "language": "en"}
    row.update(fields)
    return Contact(
        key="ana@example.org",
        email="ana@example.org",
        row=9,
        source="members.csv",
        language=row["language"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        fields=row,
    )


def _renderer(project: Path) -> Renderer:
    renderer = Renderer(load_campaign(project))
    renderer.prepare([_member(), _member(language="fr")])
    return renderer


def _button(message_html: str) -> dict[str, str]:
    href = re.search(r'<a class="button"[^>]*href="([^"]*)"', message_html)
    assert href is not None
    return dict(parse_qsl(urlsplit(html.unescape(href.group(1))).query))


def test_markup_in_a_members_name_stays_inside_the_link(project: Path) -> None:
    """A name holding & < > " ' is escaped in the href and reads back whole from the link."""
    name = "Zoë & \"Bo\" <b>O'Neil</b>"
    content = _renderer(project).render(_member(first_name=name, last_name=""))
    assert "<b>O'Neil" not in content.html  # never markup
    body = _button(content.html)["body"]
    assert body.endswith(f"Sincerely,\r\n{name}\r\nCUPW Local 12")


def test_a_letter_without_a_local_is_signed_with_the_name_alone(project: Path) -> None:
    """The sample's signature drops the local line when the member's local is empty."""
    content = _renderer(project).render(_member(local="", language="fr"))
    assert _button(content.html)["body"].endswith("salutations distinguées.\r\nAna Roy")


def test_a_letter_too_long_without_full_url_names_the_row(project: Path) -> None:
    """Too long for a link and nowhere to read the rest: an error naming the row and the fix."""
    folder = project.parent.parent / "templates" / "harkat-appeal" / "letter"
    (folder / "en.txt").write_text("Dear Minister,\n\n" + "word " * 600, encoding="utf-8")
    text = project.read_text(encoding="utf-8")
    project.write_text(re.sub(r"  full_url:.*?lettre\n", "", text, flags=re.S), encoding="utf-8")
    with pytest.raises(RenderError) as info:
        _renderer(project)
    assert str(info.value).startswith("members.csv row 9: the en letter is ")
    assert "set letter.full_url" in str(info.value)


def test_a_letter_with_no_paragraph_to_cut_is_refused(project: Path) -> None:
    """One long paragraph cannot be cut at a paragraph: the error says so."""
    folder = project.parent.parent / "templates" / "harkat-appeal" / "letter"
    (folder / "en.txt").write_text("word " * 600 + "\n\nSincerely,\nAna", encoding="utf-8")
    with pytest.raises(RenderError, match="cannot be shortened under 2,000 characters"):
        _renderer(project)


def test_undefined_name_in_a_letter_names_the_file(project: Path) -> None:
    """A letter reading a column nobody has fails before sending, naming the letter file."""
    letter = project.parent.parent / "templates" / "harkat-appeal" / "letter" / "fr.txt"
    letter.write_text("Bonjour {{ riding }}\n", encoding="utf-8")
    with pytest.raises(RenderError, match=r"letter/fr.txt: undefined variable 'riding'"):
        _renderer(project)


def test_letter_mailto_without_a_letter_says_what_to_declare(project: Path) -> None:
    """A template offering the letter in a campaign without letter: is told to declare it."""
    text = project.read_text(encoding="utf-8")
    project.write_text(re.sub(r"\nletter:\n(  .*\n|  *#.*\n)*", "\n", text), encoding="utf-8")
    with pytest.raises(RenderError, match="undefined variable 'letter_mailto' .declare letter:"):
        _renderer(project)


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        (
            'to: "{{ minister_email }}"',
            "to: minister@ps-sp.example.org, mp@example.org",
            "letter.to",
            "expected exactly one address",
        ),
        ('to: "{{ minister_email }}"', 'to: "{{ minister }}"', "letter.to", "not a key of vars"),
        ('to: "{{ minister_email }}"', 'to: "{{ x | upper }}"', "letter.to", "write an address"),
        (
            'to: "{{ minister_email }}"',
            "to: Minister <minister@ps-sp.example.org>",
            "letter.to",
            "without a name",
        ),
        ("cc: solidarity", "bcc: solidarity", "letter.bcc", "unknown key (known keys: cc, "),
        ("template: letter\n", "template: lettre\n", "letter.template", "lettre/en.txt"),
        (
            '    fr: "Permettez',
            '    fn: "Permettez',
            "letter.subject.fn",
            "'fn' is not a language of the template (it has en, fr: harkat-appeal/<language>.html); did you mean 'fr'?",
        ),
        (
            "fr: https://harkat.example.org/lettre",
            "fr: http://harkat.example.org/lettre",
            "letter.full_url.fr",
            "expected an https:// address",
        ),
        ("template: letter\n", "template: letter\n  max_chars: 99\n", "letter.max_chars", "500"),
    ],
)
def test_letter_mistakes_are_one_line_naming_the_key(
    project: Path, old: str, new: str, key: str, message: str
) -> None:
    """Each mistake in letter: is refused with the file, the line of the key, and the key."""
    edit(project, old, new)
    error = refused(project)
    assert f"{key}: " in error and message in error, error
    lines = project.read_text(encoding="utf-8").splitlines()
    start = line_of(project, "letter:")
    written = f"{key.split('.')[-1]}:" if key != "letter.full_url.fr" else "fr: http:"
    line = next(n for n in range(start, len(lines) + 1) if written in lines[n - 1])
    assert f"sept2018.yaml:{line}: " in error, error


def test_validate_reports_a_missing_letter_text_without_a_traceback(project: Path) -> None:
    """`validate` names the missing letter file in one line and exits 2."""
    (project.parent.parent / "templates" / "harkat-appeal" / "letter" / "fr.txt").unlink()
    code, output = run_cli("validate", str(project))
    assert code == 2
    assert "letter.template: no " in output and "letter/fr.txt" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1


def test_a_letter_no_template_offers_is_warned_about(project: Path) -> None:
    """letter: without a {{ letter_mailto }} link in the templates: validate and the dry run
    say so, and the messages carry no letter."""
    folder = project.parent.parent / "templates" / "harkat-appeal"
    for language in ("en", "fr"):
        page = folder / f"{language}.html"
        page.write_text(
            page.read_text(encoding="utf-8").replace("{{ letter_mailto }}", "https://x.example.org"),
            encoding="utf-8",
        )
    expected = "letter: is defined, but no template links to it"
    for command in (["validate", str(project)], ["send", str(project), "--dry-run"]):
        code, output = run_cli(*command)
        assert code == 0 and expected in output, output
    content = _renderer(project).render(_member())
    assert "mailto:minister" not in content.html and "mailto:minister" not in content.text


def test_a_letter_not_signed_with_the_members_name_is_warned_about(project: Path) -> None:
    """A letter text that never writes the member's name: validate names the file."""
    letter = project.parent.parent / "templates" / "harkat-appeal" / "letter" / "en.txt"
    letter.write_text("Dear Minister,\n\nPlease act.\n\nA member\n", encoding="utf-8")
    code, output = run_cli("validate", str(project))
    assert code == 0
    assert "letter/en.txt: the letter is not signed with the member's name" in output
    assert "letter/fr.txt: the letter is not signed" not in output
