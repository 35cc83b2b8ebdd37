"""The letter a member sends from their own address: rendered per member, offered as a link.

``letter.folder/<language>.txt`` and ``letter.subject`` are sandboxed Jinja templates read with
the message's own context (first_name, local, vars, ...). The result becomes an RFC 6068
``mailto:`` link with the subject and body prefilled. Mail clients and browsers refuse or cut
links much past 2,000 characters, so a longer letter keeps its first paragraphs, then a line
pointing at ``letter.full_url`` for the whole text, then its last paragraph (the signature),
which is always kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from ..errors import RenderError
from ..models import LetterConfig, RenderedLetter
from .mailto import encode_body, mailto

# The line that replaces the paragraphs left out, per language; English for any other.
MORE = {"en": "Read the full letter: ", "fr": "Lire la lettre complète : "}
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = len(encode_body("\n\n"))  # "%0D%0A%0D%0A"
_NAMES = {"first_name", "last_name", "display_name"}


class LetterError(Exception):
    """A member's letter cannot be offered as a link; the caller names the row."""


def tidy(text: str) -> str:
    """Trailing spaces dropped, blank lines collapsed to one, paragraphs kept."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class Letters:
    """Each language's letter compiled once; one member's letter and link on demand."""

    def __init__(self, config: LetterConfig, languages: Sequence[str]) -> None:
        self.config = config
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(config.folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text; the link encodes every character that matters
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.languages = tuple(languages)
        self.bodies: dict[str, jinja2.Template] = {}
        self.subjects: dict[str, jinja2.Template] = {}
        self.fixed_subjects: dict[str, str] = {}  # subjects without template syntax
        for language in self.languages:
            path = config.folder / f"{language}.txt"
            try:
                self.bodies[language] = self.env.get_template(path.name)
            except jinja2.TemplateNotFound:
                raise RenderError(f"{path}: no {language} letter (letter.template)") from None
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"{path}:{exc.lineno}: {exc.message}") from None
            source = config.subject_for(language)
            if "{" not in source:
                self.fixed_subjects[language] = " ".join(source.split())
            try:
                self.subjects[language] = self.env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"letter.subject.{language}: {exc.message}") from None

    def check_names(self, available: set[str]) -> list[str]:
        """Every name a letter reads exists for every member: found before anything is sent.

        Returns warnings: a letter text that does not sign with the member's name.
        """
        unsigned = []
        for language in self.languages:
            path = self.config.folder / f"{language}.txt"
            sources = (
                (str(path), path.read_text(encoding="utf-8")),
                (f"letter.subject.{language}", self.config.subject_for(language)),
            )
            for label, source in sources:
                names = meta.find_undeclared_variables(self.env.parse(source))
                missing = sorted(names - available)
                if missing:
                    raise RenderError(
                        f"{label}: undefined variable {missing[0]!r} (not a list column, a var "
                        "in the campaign, or a computed value)"
                    )
                if label == str(path) and not names & _NAMES:
                    unsigned.append(
                        f"{path}: the letter is not signed with the member's name "
                        "(add {{ display_name }} to its last paragraph)"
                    )
        return unsigned

    def render(self, ctx: Mapping[str, Any], language: str) -> RenderedLetter:
        """One member's letter; raises ``LetterError`` when even the shortest form is too long."""
        fixed = self.fixed_subjects.get(language)
        subject = fixed or " ".join(self.subjects[language].render(ctx).split())
        full = tidy(self.bodies[language].render(ctx))
        config = self.config
        link = mailto([config.to], cc=config.cc, subject=subject, body=full)
        if len(link) <= config.max_chars:
            return RenderedLetter(config.to, config.cc, subject, full, full, link)
        body = self._shortened(full, language, len(link) - len(encode_body(full)))
        link = mailto([config.to], cc=config.cc, subject=subject, body=body)
        return RenderedLetter(config.to, config.cc, subject, body, full, link)

    def _shortened(self, full: str, language: str, overhead: int) -> str:
        """The first paragraphs that fit, the line to the full text, and the signature."""
        config = self.config
        url = config.full_url_for(language)
        size = overhead + len(encode_body(full))
        if not url:
            raise LetterError(
                f"the {language} letter is {size:,} characters as a mailto: link, over "
                f"{config.max_chars:,} (mail clients cut longer links): shorten it, or set "
                "letter.full_url so that it is shortened at a paragraph with a link to the rest"
            )
        *head, signature = full.split("\n\n")
        more = MORE.get(language, MORE["en"]) + url
        # Percent-encoding works character by character, so the lengths of the parts add up.
        budget = config.max_chars - overhead - len(encode_body(signature))
        budget -= len(encode_body(more)) + 2 * _PARAGRAPH_BREAK
        kept: list[str] = []
        used = 0
        for paragraph in head:
            cost = len(encode_body(paragraph)) + (_PARAGRAPH_BREAK if kept else 0)
            if used + cost > budget:
                break
            kept.append(paragraph)
            used += cost
        if not kept:
            raise LetterError(
                f"the {language} letter cannot be shortened under {config.max_chars:,} "
                "characters as a mailto: link: its first paragraph and its last (the signature) "
                "are too long together, or it has no blank lines between paragraphs"
            )
        return "\n\n".join([*kept, more, signature])
