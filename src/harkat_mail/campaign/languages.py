"""Per-language keys (subject, from, reply_to, identification.name, the letter's subject and
full_url) must name a language the template has: ``fn:`` for ``fr:`` would otherwise give French
members the default subject. (``letter:`` checks that each language has an entry.)"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .guidance import suggest
from .yamldoc import Reader

_VARIANT_RE = re.compile(r"^([a-z]{2})\.html$")
PER_LANGUAGE = (
    ("subject",),
    ("from",),
    ("reply_to",),
    ("identification", "name"),
    ("letter", "subject"),
    ("letter", "full_url"),
)


def template_languages(template: Path) -> list[str]:
    """The languages a template folder has: one ``<code>.html`` each (none if unreadable:
    the renderer then says why)."""
    try:
        names = [p.name for p in template.iterdir()]
    except OSError:
        return []
    return sorted(m.group(1) for name in names if (m := _VARIANT_RE.match(name)))


def check_language_keys(r: Reader, top: Mapping[str, Any], template: Path) -> None:
    """Refuse a language key the template lacks, naming it, its line and the nearest code."""
    languages = template_languages(template)
    if not languages:
        return  # the renderer names the missing <language>.html files
    for at in PER_LANGUAGE:
        value: Any = top
        for key in at:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            continue  # one value for every language, or an error the key's reader reports
        for code in value:
            if code in languages:
                continue
            has = f"{', '.join(languages)}: {template.name}/<language>.html"
            raise r.doc.error(
                (*at, str(code)),
                f"{code!r} is not a language of the template (it has {has})"
                f"{suggest(str(code), languages)}",
            )
