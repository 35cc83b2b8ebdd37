"""The plain-text part: HTML read as a person reads plain text, not as Markdown.

html2text does the layout (paragraphs, lists, line breaks); its Markdown is then rewritten:
headings underlined (``=`` under the first level, ``-`` under the others), links as
``text: url`` (the address alone when the text is the address), list items with ``- ``,
escapes removed, table cells on lines of their own, no trailing spaces.
"""

from __future__ import annotations

import re

import html2text

_HEADING = re.compile(r"^(#{1,6}) +(.+?)(?: +#+)?$", re.M)
# [text](url "title"), the text possibly holding [brackets], the URL html2text's escapes.
_LINK = re.compile(
    r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"
    r"\(((?:\\.|[^\s()\\]|\((?:\\.|[^\s()\\])*\))*)"
    r'(?:\s+"(?:[^"\\]|\\.)*")?\)'
)
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_LINK_OR_ESCAPE = re.compile(f"{_LINK.pattern}|{_ESCAPED.pattern}")
_TRAILING = re.compile(r"[ \t]+$", re.M)
_BLANK_LINES = re.compile(r"\n{3,}")
_STAND_INS = {"\u00a0": "\ue000", "\u202f": "\ue001"}  # private-use characters
_HIDE_SPACES = str.maketrans(_STAND_INS)
_SHOW_SPACES = str.maketrans({v: k for k, v in _STAND_INS.items()})


class _Converter(html2text.HTML2Text):
    """html2text with tables as paragraphs, each cell on a line of its own (mail layouts)."""

    def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
        if tag == "table":
            self.p()  # a table starts and ends a paragraph, as a block of text would
        super().handle_tag(tag, attrs, start)
        if tag in ("td", "th") and not start:
            self.soft_br()


def _link(match: re.Match[str], colon: str = ": ") -> str:
    """A link as ``text: url``; outside links, an escaped character as itself."""
    if match.group(2) is None:
        return match.group(3)
    text = _ESCAPED.sub(r"\1", " ".join(match.group(1).split()))
    url = _ESCAPED.sub(r"\1", match.group(2))
    if not text or text in (url, url.removeprefix("mailto:")):
        return text or url
    return f"{text}{colon}{url}"


def _heading(match: re.Match[str]) -> str:
    text = match.group(2).strip()
    return f"{text}\n{('=' if len(match.group(1)) == 1 else '-') * len(text)}"


def html_to_text(html: str, french: bool = False) -> str:
    """Plain-text alternative of an HTML body: paragraphs, underlined headings, ``text: url``
    (``french``: a narrow no-break space before the colon, as French writes it)."""
    converter = _Converter()
    converter.body_width = 0  # mail clients wrap; hard breaks would split links
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True  # no "| --- |" grids out of layout tables
    converter.inline_links = True
    converter.use_automatic_links = False  # "[url](url)", read below as the url alone
    converter.protect_links = False
    converter.unicode_snob = True
    converter.ul_item_mark = "-"
    # html2text turns no-break spaces into plain ones; carry them through as stand-ins.
    text = str(converter.handle(html.translate(_HIDE_SPACES))).translate(_SHOW_SPACES)
    colon = "\u202f: " if french else ": "
    text = _HEADING.sub(_heading, _LINK_OR_ESCAPE.sub(lambda m: _link(m, colon), text))
    text = _BLANK_LINES.sub("\n\n", _TRAILING.sub("", text))
    return text.strip() + "\n"
