"""Inline CSS once per template variant: protect Jinja syntax, inline, restore.

HTML parsers inside CSS inliners rewrite Jinja syntax (percent-encoded hrefs, ``{% for %}``
moved out of tables, ``>`` escaped). So every Jinja construct is swapped for an inert token
before inlining and swapped back after: a bare alphanumeric token inside tags, attribute
values and ``<style>``; an HTML comment for block tags that sit between elements (comments
survive table rows). Constructs that change markup structure in ways a static inliner cannot
follow (syntax inside a tag outside any attribute value, dynamic ``class``/``id``) are
reported as unsupported so the caller falls back to inlining per recipient.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import premailer

from .plaintext import html_to_text

# A Jinja construct: {{ ... }}, {% ... %} or {# ... #}, quotes honoured inside tags.
JINJA_RE = re.compile(
    r"""\{\{(?:[^}'"]|'[^']*'|"[^"]*"|\}(?!\}))*\}\}"""
    r"""|\{%(?:[^%'"]|'[^']*'|"[^"]*"|%(?!\}))*%\}"""
    r"""|\{\#.*?\#\}""",
    re.S,
)
_STRUCTURAL_RE = re.compile(r"^\{%-?\s*(extends|block|endblock|include)\b")
_RAW_RE = re.compile(r"\{%-?\s*raw\s*-?%\}")
_ATTR_BEFORE_RE = re.compile(r"([\w:-]+)\s*=\s*[\"'][^\"']*$")
_TAG_NAME_RE = re.compile(r"<\s*(/?)\s*([A-Za-z][\w-]*)")
_RAW_TEXT = {"style", "title", "textarea", "script"}


class Unsupported(Exception):
    """The template uses syntax that cannot be inlined once; inline per recipient instead."""


@dataclass(frozen=True)
class Protected:
    """Template text with every Jinja construct replaced by a token, and the way back."""

    text: str
    tokens: dict[str, str]  # token -> original Jinja text
    comment_tokens: frozenset[str]

    def restore(self, text: str, strict: bool = True) -> str:
        """Put the Jinja syntax back.

        When strict, every construct must come back, and block tags exactly once. An
        expression may come back more than once: inliners legitimately copy values
        (``background-color`` into ``bgcolor``), and the caller verifies the output.
        """
        for token, original in self.tokens.items():
            wrapped = f"<!--{token}-->"
            if token in self.comment_tokens and wrapped in text:
                count = text.count(wrapped)
                text = text.replace(wrapped, original)
            else:
                count = text.count(token)
                text = text.replace(token, original)
            if strict and (count == 0 or (count > 1 and not original.startswith("{{"))):
                raise Unsupported(
                    f"the inliner {'dropped' if count == 0 else 'duplicated'} {original[:40]!r}"
                )
        return text


def protect(source: str, *, comments: bool = True) -> Protected:
    """Swap Jinja constructs for tokens, tracking whether each sits in text, a tag or a value."""
    salt = secrets.token_hex(4)
    while salt in source:
        salt = secrets.token_hex(4)
    out: list[str] = []
    tokens: dict[str, str] = {}
    comment_tokens: set[str] = set()
    shared: dict[str, str] = {}
    in_tag = False
    in_comment = False
    quote = ""
    raw_element = ""  # inside <style>/<title>/...: text there is not markup
    tag_text: list[str] = []
    position = 0

    def scan(literal: str) -> None:
        nonlocal in_tag, in_comment, quote, raw_element
        for i, char in enumerate(literal):
            if in_comment:
                in_comment = not (char == ">" and literal[max(0, i - 2) : i + 1] == "-->")
            elif in_tag:
                tag_text.append(char)
                if quote:
                    if char == quote:
                        quote = ""
                elif char in "\"'":
                    quote = char
                elif char == ">":
                    in_tag = False
                    match = _TAG_NAME_RE.match("".join(tag_text))
                    if match:
                        closing, name = match.group(1), match.group(2).lower()
                        if closing and name == raw_element:
                            raw_element = ""
                        elif not closing and name in _RAW_TEXT:
                            raw_element = name
                    tag_text.clear()
            elif char == "<" and literal.startswith("<!--", i) and not raw_element:
                in_comment = True
            elif char == "<":
                rest = literal[i + 1 : i + 2]
                if raw_element and not literal[i:].lower().startswith(f"</{raw_element}"):
                    continue
                if rest and (rest.isalpha() or rest in "/!"):
                    in_tag = True
                    tag_text[:] = ["<"]

    for index, match in enumerate(JINJA_RE.finditer(source)):
        literal = source[position : match.start()]
        scan(literal)
        out.append(literal)
        original = match.group(0)
        # The same expression gets the same token, so the text part can see that a link's
        # text is its address ({{ url }} -> {{ url }}) before anything is rendered.
        token = shared.get(original) or f"zq{salt}x{index:05d}q"
        if original.startswith("{{"):
            shared[original] = token
        tokens[token] = original
        is_block = not original.startswith("{{")
        if in_comment:  # already inside an HTML comment, which inliners keep as it is
            out.append(token)
        elif in_tag:
            if not quote:
                raise Unsupported(f"template syntax inside a tag, outside an attribute: {original}")
            attr = _ATTR_BEFORE_RE.search("".join(tag_text))
            if attr and attr.group(1).lower() in ("class", "id"):
                raise Unsupported(f"a {attr.group(1)} attribute set by the template: {original}")
            out.append(token)
            tag_text.append(token)
        elif raw_element:
            if raw_element == "style" and is_block:
                raise Unsupported(f"a template block inside <style>: {original}")
            out.append(token)
        elif is_block and comments:
            comment_tokens.add(token)
            out.append(f"<!--{token}-->")
        else:
            out.append(token)
        position = match.end()
    out.append(source[position:])
    scan(source[position:])
    return Protected("".join(out), tokens, frozenset(comment_tokens))


def premailer_inline(html: str) -> str:
    """The reference inliner, configured for mail: no network, classes kept, quiet."""
    return str(
        premailer.Premailer(
            html,
            allow_network=False,
            disable_validation=True,
            remove_classes=False,
            strip_important=False,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )


def inline_once(source: str, inline: Callable[[str], str] = premailer_inline) -> str:
    """Inline the CSS of a Jinja HTML template without rendering it; may raise ``Unsupported``."""
    protected = protect(source)
    return protected.restore(inline(protected.text))


def text_once(source: str, french: bool = False) -> str:
    """Derive a Jinja plain-text template from a Jinja HTML template; may raise ``Unsupported``."""
    # Not strict: the text form legitimately drops attributes (lang, class) and their syntax.
    protected = protect(source, comments=False)
    return protected.restore(html_to_text(protected.text, french), strict=False)


def normalise_html(html: str) -> str:
    """Whitespace- and entity-insensitive form used to compare inline-once with per-recipient."""
    import html as htmllib

    text = htmllib.unescape(html)
    text = re.sub(r">\s+<", "><", text)
    return re.sub(r"\s+", " ", text).strip()


class _FrozenLoader(jinja2.FileSystemLoader):
    """Serves sources whose non-structural syntax is wrapped in ``{% raw %}``.

    Rendering through it resolves ``extends``/``block``/``include`` and leaves every other
    construct as literal text: one flat Jinja document that an inliner can see whole.
    """

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if _RAW_RE.search(source):
            raise Unsupported(f"{template} uses {{% raw %}}")

        def freeze(match: re.Match[str]) -> str:
            text = match.group(0)
            return text if _STRUCTURAL_RE.match(text) else "{% raw %}" + text + "{% endraw %}"

        return JINJA_RE.sub(freeze, source), filename, uptodate


def flatten(folder: Path, name: str) -> str:
    """The variant's full document with inheritance resolved and per-recipient syntax intact."""
    env = jinja2.Environment(loader=_FrozenLoader(str(folder)), undefined=jinja2.StrictUndefined)
    try:
        return env.get_template(name).render()
    except jinja2.TemplateError as exc:
        raise Unsupported(f"cannot flatten {name}: {exc}") from None


def inline_verified(
    env: jinja2.Environment, flat: str, references: Iterable[tuple[Mapping[str, Any], str]]
) -> jinja2.Template:
    """Compile ``flat`` with its CSS inlined once, proven equal to per-recipient inlining.

    ``references`` pairs a recipient context with the unsplit template's output for it. Raises
    ``Unsupported`` when the syntax cannot be protected or any output differs after
    normalising whitespace and entities.
    """
    try:
        candidate = env.from_string(inline_once(flat))
    except jinja2.TemplateSyntaxError as exc:
        raise Unsupported(f"inlined template does not compile: {exc.message}") from None
    for ctx, reference_html in references:
        want = normalise_html(premailer_inline(reference_html))
        try:
            got = normalise_html(candidate.render(ctx))
        except jinja2.TemplateError as exc:
            raise Unsupported(f"inlined template fails to render: {exc}") from None
        if want != got:
            raise Unsupported(f"inline-once output differs for {ctx.get('email', 'a recipient')}")
    return candidate
