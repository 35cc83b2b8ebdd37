"""French typography: non-breaking spaces where a phone must not break the line.

Applied to French text only: in HTML, the text between tags whose nearest ``lang`` is ``fr``
(never tags, attribute values, comments, ``<style>`` or ``<script>``), once per variant on
the template (``typeset_source``: values inserted by ``{{ }}`` are left as they are) and on the
subject (``typeset_subject``); in a
``.txt`` template's output, the French sections of each message. Only spaces already written
are replaced, and URLs hold no spaces, so links are never touched:

- a narrow no-break space (U+202F) before ``;`` ``:`` ``!`` ``?`` and inside « guillemets »;
- a no-break space (U+00A0) between groups of digits (``25 000``) and before ``$ € %``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .inline import Unsupported, protect

NNBSP = "\u202f"
NBSP = "\u00a0"
# Every rule starts at a space (or «), which keeps the scan fast; _space decides by context.
_RULES = re.compile(r"«[ \t]+|[ \t]+(?=([;:!?»])|[$€%]|\d{3}(?!\d))")
_MARKUP = re.compile(
    r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>|<![^>]*>|<\?[^>]*>"
    r"|<(/?)([A-Za-z][\w:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.S | re.I,
)
# A literal language tag only: lang="{{ language }}" (a token here) is inherited instead.
_LANG = re.compile(r"""\blang\s*=\s*(["']?)([A-Za-z]{2,3})(?:-[A-Za-z0-9-]*)?\1(?=[\s/]|$)""", re.I)
_HAS_FRENCH = re.compile(r"""\blang\s*=\s*["']?fr\b""", re.I)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


def _space(match: re.Match[str]) -> str:
    text, start = match.string, match.start()
    if text[start] == "«":
        return "«" + NNBSP
    before = text[start - 1] if start else ""
    if match.group(1):  # punctuation: after a word, not at the start of a line
        return NNBSP if not before.isspace() else match.group(0)
    return NBSP if before.isdigit() else match.group(0)  # 25 000, 000 $


def french_spaces(text: str) -> str:
    """Plain French text with its no-break spaces."""
    return _RULES.sub(_space, text)


def typeset_subject(source: str, language: str) -> str:
    """A French subject template with its no-break spaces (``Canada : trois`` holds together
    in a phone's inbox); its template syntax untouched, or the subject as written if that
    syntax cannot be set aside."""
    if language != "fr":
        return source
    try:
        protected = protect(source, comments=False)
        return protected.restore(french_spaces(protected.text), strict=False)
    except Unsupported:
        return source


def typeset_source(source: str, language: str) -> str:
    """A Jinja HTML template with its French text fixed once, its template syntax untouched.

    Raises ``Unsupported`` (from ``protect``) when the syntax cannot be set aside; the caller
    then fixes each rendered message instead.
    """
    protected = protect(source)
    return protected.restore(french_html(protected.text, language), strict=False)


def french_html(html: str, language: str) -> str:
    """An HTML document with French text nodes fixed; ``language``: the document's default."""
    if language != "fr" and not _HAS_FRENCH.search(html):
        return html
    out: list[str] = []
    opened: dict[str, int] = {}  # open elements per tag name
    stack: list[tuple[str, int, str]] = [("", 0, language)]  # (tag, its depth, lang)
    position = 0
    before = ""  # the last character of the text so far: "25 000</b> $" spans two nodes
    for match in _MARKUP.finditer(html):
        text = html[position : match.start()]
        if stack[-1][2] == "fr" and text.strip():
            text = french_spaces(before + text)[len(before) :]
        if text:
            before = "" if text[-1].isspace() else text[-1]
        out.append(text)
        out.append(match.group(0))
        position = match.end()
        name = (match.group(3) or "").lower()
        if not name or name in _VOID or match.group(4).rstrip().endswith("/"):
            continue
        if match.group(2):  # a closing tag: leave the elements it closes
            opened[name] = max(0, opened.get(name, 0) - 1)
            while len(stack) > 1 and stack[-1][0] == name and opened[name] < stack[-1][1]:
                stack.pop()
            continue
        opened[name] = opened.get(name, 0) + 1
        lang = _LANG.search(match.group(4))
        if lang:
            stack.append((name, opened[name], lang.group(2).lower()))
    rest = html[position:]
    out.append(french_spaces(before + rest)[len(before) :] if stack[-1][2] == "fr" else rest)
    return "".join(out)


def french_text(text: str, languages: Sequence[str], divider: str) -> str:
    """A text part with its French sections fixed.

    ``languages``: the sections' languages in order, separated by ``divider`` lines (a
    combined bilingual message); when the count does not match, only the first section's.
    """
    if "fr" not in languages:
        return text
    parts = text.split(f"\n{divider}\n")
    if len(parts) != len(languages):
        head, sep, tail = text.partition(f"\n{divider}\n")
        return (french_spaces(head) if languages[0] == "fr" else head) + sep + tail
    return f"\n{divider}\n".join(
        french_spaces(part) if language == "fr" else part
        for part, language in zip(parts, languages, strict=True)
    )
