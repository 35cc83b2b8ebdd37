"""The campaign's ``letter:`` key: the letter members send, checked before anything renders.

```yaml
letter:
  to: "{{ minister_email }}"       # one address, or {{ name }} of a key in vars:
  cc: [solidarity@cupw.example.org] # optional: one address or a list
  subject: {en: ..., fr: ...}      # Jinja, one per template language (or one string)
  template: letter                 # <template folder>/letter/<language>.txt, one per language
  full_url: {en: https://..., fr: https://...}  # optional: where the whole letter is read
  max_chars: 2000                  # optional: the longest mailto: link offered
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..models import LetterConfig
from .headers import https_url, mailbox
from .yamldoc import Reader

_KEYS = {"to", "cc", "subject", "template", "full_url", "max_chars"}
_VARIANT = re.compile(r"^([a-z]{2})\.html$")
_VAR = re.compile(r"^\{\{\s*([A-Za-z_]\w*)\s*\}\}$")
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def template_languages(template: Path) -> list[str]:
    """The languages a template folder has a ``<language>.html`` for."""
    return sorted(m.group(1) for p in template.iterdir() if (m := _VARIANT.match(p.name)))


def _address(r: Reader, value: object, at: tuple[str, ...], variables: Mapping[str, Any]) -> str:
    """One bare address, written out or named as ``{{ var }}``."""
    text = r.text(value, at)
    named = _VAR.match(text)
    if named:
        name = named.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none defined"
            raise r.doc.error(at, f"{{{{ {name} }}}} is not a key of vars: ({known})")
        text = r.text(variables[name], ("vars", name))
    elif "{" in text:
        raise r.doc.error(at, "write an address, or {{ name }} naming a key of vars:")
    try:
        return mailbox(text, bare=True)
    except ValueError as exc:
        raise r.doc.error(at, str(exc)) from None


def _per_language(
    r: Reader, value: object, at: tuple[str, ...], languages: list[str]
) -> dict[str, str]:
    """One string for every language, or an entry for each template language."""
    found = r.per_language(value, at, "text")
    missing = [language for language in languages if language not in found]
    if missing and "*" not in found:
        others = [language for language in found if language not in languages]
        hint = f" ({', '.join(others)} is not a template language)" if others else ""
        raise r.doc.error(at, f"needs an entry for {', '.join(missing)}{hint}")
    return found


def letter_config(
    r: Reader, value: object, template: Path, variables: Mapping[str, Any]
) -> LetterConfig | None:
    """``letter:`` read and checked: addresses, subjects and a letter file per language."""
    if value is None:
        return None
    spec = r.map(value, ("letter",), _KEYS)
    for key in ("to", "subject", "template"):
        if key not in spec:
            raise r.doc.error(("letter",), f"missing key {key!r}")
    languages = template_languages(template)
    to = _address(r, spec["to"], ("letter", "to"), variables)
    cc_value = spec.get("cc", [])
    items: list[tuple[object, tuple[str, ...]]]
    if isinstance(cc_value, list):
        items = [(item, ("letter", "cc", str(i))) for i, item in enumerate(cc_value)]
    else:
        items = [(cc_value, ("letter", "cc"))]
    cc = tuple(_address(r, item, at, variables) for item, at in items)
    name = r.text(spec["template"], ("letter", "template"))
    if not _FOLDER.match(name):
        raise r.doc.error(
            ("letter", "template"), "the name of a folder in the template folder, e.g. letter"
        )
    folder = template / name
    for language in languages:
        if not (folder / f"{language}.txt").is_file():
            raise r.doc.error(
                ("letter", "template"),
                f"no {folder / f'{language}.txt'}: the letter needs a text per template language",
            )
    full_url = {}
    if "full_url" in spec:
        urls = _per_language(r, spec["full_url"], ("letter", "full_url"), languages)
        for language, url in urls.items():
            at = ("letter", "full_url") if language == "*" else ("letter", "full_url", language)
            try:
                full_url[language] = https_url(url)
            except ValueError as exc:
                raise r.doc.error(at, str(exc)) from None
    return LetterConfig(
        to=to,
        subject=_per_language(r, spec["subject"], ("letter", "subject"), languages),
        folder=folder.resolve(),
        cc=cc,
        full_url=full_url,
        max_chars=r.integer(spec.get("max_chars", 2000), ("letter", "max_chars"), 500, 8000),
    )
