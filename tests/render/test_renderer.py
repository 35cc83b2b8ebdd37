"""Rendering: sandboxed, escaped, strict, bilingual, and CSS inlined once for the sample."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from harkat_mail.campaign import load_campaign
from harkat_mail.errors import RenderError
from harkat_mail.models import Contact
from harkat_mail.render import Renderer
from harkat_mail.run import prepare


def _contact(**fields: str) -> Contact:
    base = {
        "email": "ana@example.org",
        "first_name": "Ana",
        "last_name": "Roy",
        "local": "12",
        "language": "en",
        "status": "active",
    }
    base.update(fields)
    return Contact(
        key=base["email"].lower(),
        email=base["email"],
        row=7,
        source="m.csv",
        language=base["language"],
        first_name=base["first_name"],
        last_name=base["last_name"],
        fields=base,
    )


def _renderer(
    project: Path, body: str | None = None, contacts: list[Contact] | None = None
) -> Renderer:
    folder = project.parent.parent / "templates" / "harkat-appeal"
    if body is not None:
        (folder / "en.html").write_text(body, encoding="utf-8")
        (folder / "fr.html").unlink()
        # an English-only template: the campaign's French keys would name a missing language
        yaml = "".join(
            line for line in project.read_text().splitlines(True) if not line.lstrip().startswith("fr:")
        )
        project.write_text(yaml, encoding="utf-8")
    renderer = Renderer(load_campaign(project))
    renderer.prepare(contacts or [_contact()])
    return renderer


def test_sample_variants_inline_once_without_warnings(project: Path) -> None:
    """Both languages of the sample take the inline-once path for HTML and text: no warning."""
    prepared = prepare(load_campaign(project))
    assert prepared.renderer.languages == ["en", "fr"]
    assert prepared.renderer.warnings == []  # a fallback per recipient would be warned about
    for language in ("en", "fr"):
        content = prepared.renderer.render(_contact(language=language))
        assert re.search(r'<a class="button"[^>]* style="[^"]*background-color:#c8102e', content.html)


def test_inlined_output_has_styles_and_member_values(project: Path) -> None:
    """The HTML part has inline styles, the member's name, and the links from vars."""
    renderer = _renderer(project)
    content = renderer.render(_contact(first_name="Zoë"))
    assert 'style="' in content.html and "Dear Zoë," in content.html
    assert "https://harkat.example.org/donate" in content.html
    assert "https://harkat.example.org/donate" in content.text
    assert "$25,000" in content.text


def test_french_members_get_the_french_variant(project: Path) -> None:
    """A member whose language is fr gets the French body and subject."""
    renderer = _renderer(project, contacts=[_contact(), _contact(language="fr")])
    content = renderer.render(_contact(language="fr", first_name="Gaëlle"))
    assert "Bonjour Gaëlle," in content.html and "25\u00a0000\u00a0$" in content.text
    assert content.subject.startswith("Mohamed Harkat doit rester au Canada")


def test_member_values_are_escaped_and_never_evaluated(project: Path) -> None:
    """A name holding markup or Jinja arrives escaped and literal, in HTML and text."""
    renderer = _renderer(project)
    content = renderer.render(_contact(first_name="<script>{{ 7*7 }}</script>"))
    assert "<script>" not in content.html and "&lt;script&gt;" in content.html
    assert "{{ 7*7 }}" in content.html and "49" not in content.text.split("Dear")[1][:40]


def test_undefined_variable_names_file_and_variable(project: Path) -> None:
    """A template reading a name no recipient has fails before sending, naming both."""
    with pytest.raises(RenderError, match=r"en.html: undefined variable 'shoe_size'"):
        _renderer(project, "<p>{{ shoe_size }}</p>")


def test_sandbox_refuses_attribute_escape(project: Path) -> None:
    """A template reaching for __class__ is refused by the sandbox as unsafe, naming the row."""
    with pytest.raises(RenderError, match=r"m.csv row 7: .*'__class__'.* is unsafe"):
        _renderer(project, "<p>{{ first_name.__class__.__mro__ }}</p>")


def test_dynamic_class_falls_back_with_a_warning(project: Path) -> None:
    """A class set by the template cannot be inlined once: per-recipient inlining, and a warning."""
    body = (
        "<html><head><style>.hot { color: red; }</style></head><body>"
        '<p class="{{ status }}">{{ first_name }}</p></body></html>'
    )
    renderer = _renderer(project, body)
    assert "CSS inlined per recipient" in renderer.warnings[0]
    html = renderer.render(_contact(status="hot")).html
    assert "color:red" in html.replace(" ", "")


def test_unknown_language_falls_back_to_default(project: Path) -> None:
    """A member whose language has no template gets the default language."""
    renderer = _renderer(project)
    assert renderer.language_for(replace(_contact(), language="de")) == "en"


def test_bilingual_combined_puts_the_members_language_first(project: Path) -> None:
    """bilingual: combined sends both languages, the member's own first, inlined once."""
    project.write_text(project.read_text() + "bilingual: combined\n", encoding="utf-8")
    prepared = prepare(load_campaign(project))
    assert prepared.renderer.warnings == []  # both combined variants inlined once
    fr = prepared.renderer.render(_contact(language="fr", first_name="Gaëlle"))
    en = prepared.renderer.render(_contact(language="en", first_name="Owen"))
    assert fr.html.index("Bonjour Gaëlle") < fr.html.index("Dear Gaëlle")
    assert en.html.index("Dear Owen") < en.html.index("Bonjour Owen")
    assert en.text.index("Dear Owen") < en.text.index("Bonjour Owen")
    assert (
        fr.subject.startswith("Mohamed Harkat doit rester")
        and " / Mohamed Harkat must" in fr.subject
    )
    assert 'class="language-divider"' in en.html and 'style="' in en.html
