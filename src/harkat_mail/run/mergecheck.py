"""Warnings about what members would see wrong: an empty merge field in the subject or the
greeting ("Dear ,"), and a language the template lacks (the member gets the default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..models import Campaign, Contact, name_rows
from ..render import Renderer, bare_names, greeting_names

_ATTRIBUTES: dict[str, Callable[[Contact], str]] = {
    "first_name": lambda c: c.first_name,
    "last_name": lambda c: c.last_name,
    "display_name": lambda c: c.display_name,
    "member_id": lambda c: c.member_id,
}


def _getter(name: str, campaign: Campaign, sample: Contact) -> Callable[[Contact], str] | None:
    """How to read a merge field from a member, or None when it is never empty."""
    if name in _ATTRIBUTES:
        return _ATTRIBUTES[name]
    if name in campaign.vars or name not in sample.fields:
        return None  # a campaign value or a computed one (email, unsubscribe_url ...)
    return lambda c: str(c.fields.get(name, ""))


def _empty_fields(
    campaign: Campaign, language: str, members: Sequence[Contact]
) -> list[str]:
    found = []
    places = (
        ("subject", bare_names(campaign.subject_for(language))),
        ("greeting", greeting_names(campaign.template / f"{language}.html")),
    )
    for place, names in places:
        for name in sorted(names):
            getter = _getter(name, campaign, members[0])
            if getter is None:
                continue
            empty = [(c.source, c.row) for c in members if not getter(c).strip()]
            if empty:
                found.append(
                    f"{language} {place} uses {name}, empty for {_members(len(empty))} "
                    f"({name_rows(empty, len(empty))}); use "
                    f"{{{{ {name} | default('member') }}}}"
                )
    return found


def warn_empty_fields(campaign: Campaign, renderer: Renderer, contacts: Sequence[Contact]) -> None:
    """Add to each variant's warnings the bare merge fields that are empty for some members."""
    by_language: dict[str, list[Contact]] = {}
    for contact in contacts:
        by_language.setdefault(renderer.language_for(contact), []).append(contact)
    for language, members in sorted(by_language.items()):
        found = _empty_fields(campaign, language, members)
        if found:
            variant = renderer.variants[language]
            renderer.variants[language] = replace(variant, warnings=(*variant.warnings, *found))


def language_fallbacks(renderer: Renderer, contacts: Sequence[Contact]) -> list[str]:
    """Members whose language the template lacks, per language, with their first rows."""
    lacking: dict[str, list[tuple[str, int]]] = {}
    for contact in contacts:
        if contact.language not in renderer.languages:
            lacking.setdefault(contact.language, []).append((contact.source, contact.row))
    default = renderer.campaign.default_language
    return [
        f"{_members(len(rows))} {'has' if len(rows) == 1 else 'have'} language {code!r}, "
        f"which the template lacks (it has "
        f"{', '.join(renderer.languages)}); they get {default}: {name_rows(rows, len(rows))}"
        for code, rows in sorted(lacking.items())
    ]


def _members(count: int) -> str:
    return f"{count} member" if count == 1 else f"{count} members"
