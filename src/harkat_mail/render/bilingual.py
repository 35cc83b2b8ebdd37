"""``bilingual: combined``: one message, the member's language first, the others after it.

The message opens with a one-line notice in each other language ("Le français suit",
"English follows") that links to that language's section, so a reader of the second
language sees at once that their text is there and can jump to it. The text part opens
with the same line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from .inline import Unsupported

TEXT_DIVIDER = "* * *"
# "<Language> follows", written in that language; any other language shows its code.
NOTICE = {"en": "English follows", "fr": "Le français suit"}
_BODY_RE = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)
_BODY_START = re.compile(r"<body[^>]*>", re.I)
_NOTICE_STYLE = (
    "margin:0;padding:8px 16px;text-align:center;font-family:Arial,Helvetica,sans-serif;"
    "font-size:13px"
)


def notice_text(languages: Sequence[str]) -> str:
    """The opening line for readers of the other languages: "Le français suit"."""
    return " · ".join(NOTICE.get(lang, f"[{lang}] ↓") for lang in languages[1:])


def notice_html(languages: Sequence[str]) -> str:
    """The opening line as links to each other language's section (``#lang-fr``)."""
    links = " · ".join(
        f'<a href="#lang-{lang}" lang="{lang}">{html.escape(NOTICE.get(lang, f"[{lang}] ↓"))}</a>'
        for lang in languages[1:]
    )
    return f'<p class="language-notice" style="{_NOTICE_STYLE}">{links}</p>\n'


def combine_documents(documents: Sequence[str], languages: Sequence[str]) -> str:
    """One HTML document: the notice, the first one whole, the others' bodies after a divider."""
    first = documents[0]
    end = first.lower().rfind("</body>")
    start = _BODY_START.search(first)
    if end < 0 or start is None:
        raise Unsupported("the template has no <body> element")
    extra = []
    for document, language in zip(documents[1:], languages[1:], strict=True):
        body = _BODY_RE.search(document)
        if body is None:
            raise Unsupported(f"the {language} template has no <body> element")
        extra.append(
            f'<hr class="language-divider" style="border:0;border-top:1px solid #ccc;'
            f'margin:32px 0">\n<div lang="{language}" id="lang-{language}">'
            f"{body.group(1)}</div>\n"
        )
    return (
        first[: start.end()]
        + "\n"
        + notice_html(languages)
        + first[start.end() : end]
        + "".join(extra)
        + first[end:]
    )
