"""Prepare a run: load the list, compile and check every variant, then plan it in the send log."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import RenderError
from ..mail import DkimSigner, VariantMessages, message_id
from ..models import (
    Campaign,
    Contact,
    ContactList,
    OutgoingMessage,
    RenderedContent,
    reason_label,
)
from ..render import VERIFY_SAMPLE, Renderer, missing_identification, spread
from ..store import Store
from .liveness import expire_dead_local_runs
from .mergecheck import language_fallbacks, warn_empty_fields


@dataclass(frozen=True)
class Prepared:
    """A campaign checked end to end short of sending: list loaded, variants compiled."""

    campaign: Campaign
    contacts: ContactList
    renderer: Renderer
    builders: Mapping[str, VariantMessages]
    fingerprints: Mapping[str, str]  # of the inputs as they were read, for resume checks

    def compose(self, contact: Contact) -> OutgoingMessage:
        """Render and wrap one recipient."""
        return self.render_message(contact)[1]

    def render_message(self, contact: Contact) -> tuple[RenderedContent, OutgoingMessage]:
        """One recipient's rendered content and the message built from it."""
        language = self.renderer.language_for(contact)
        content = self.renderer.render(contact)
        return content, self.builders[language].build(contact, content, content.unsubscribe_url)


def prepare(campaign: Campaign) -> Prepared:
    """Load the list and compile every template variant; every input error surfaces here."""
    from ..lists import load_contacts  # here, not at the top: render workers never load lists

    fingerprints = input_fingerprints(campaign)
    contacts = load_contacts(campaign.contacts, campaign.language_column, campaign.default_language)
    return compile_campaign(campaign, contacts, fingerprints)


def compile_campaign(
    campaign: Campaign, contacts: ContactList, fingerprints: Mapping[str, str]
) -> Prepared:
    """Compile and check every variant for these contacts (render workers pass a sample)."""
    renderer = Renderer(campaign)
    renderer.prepare(contacts.contacts)
    check_identification(campaign, renderer, contacts.contacts)
    warn_empty_fields(campaign, renderer, contacts.contacts)
    fallbacks = language_fallbacks(renderer, contacts.contacts)
    if fallbacks:
        contacts = replace(contacts, warnings=(*contacts.warnings, *fallbacks))
    signer = DkimSigner(campaign.dkim) if campaign.dkim else None
    builders = {
        lang: VariantMessages(campaign, lang, renderer.content_language(lang), signer)
        for lang in renderer.languages
    }
    return Prepared(campaign, contacts, renderer, builders, fingerprints)


def samples(prepared: Prepared) -> tuple[Contact, ...]:
    """The contacts each variant was checked against: first, last and between, per language."""
    by_language: dict[str, list[Contact]] = {}
    for contact in prepared.contacts.contacts:
        by_language.setdefault(prepared.renderer.language_for(contact), []).append(contact)
    return tuple(c for members in by_language.values() for c in spread(members, VERIFY_SAMPLE))


def check_identification(
    campaign: Campaign, renderer: Renderer, contacts: Sequence[Contact]
) -> None:
    """CASL: each language variant shows who sends, where, how to reach them, how to leave.

    A commercial campaign that lacks any of them is refused; an informational one is warned.
    """
    by_language: dict[str, list[Contact]] = {}
    for contact in contacts:
        by_language.setdefault(renderer.language_for(contact), []).append(contact)
    problems: list[str] = []
    for language, members in sorted(by_language.items()):
        missing: list[str] = []
        # First, last and between: a footer that varies with a column is caught more often.
        for contact in spread(members, VERIFY_SAMPLE):
            content = renderer.render(contact)
            for item in missing_identification(
                content.html,
                content.text,
                content.unsubscribe_url,
                renderer.unsubscribe.works(content.unsubscribe_url, contact.key),
                campaign.identification,
                language,
            ):
                if item not in missing:
                    missing.append(item)
        if not missing:
            continue
        line = f"{campaign.template / (language + '.html')}: the message lacks {'; '.join(missing)}"
        if campaign.purpose == "commercial":
            problems.append(line)
        else:
            variant = renderer.variants[language]
            renderer.variants[language] = replace(
                variant, warnings=(*variant.warnings, f"CASL: {line}")
            )
    if problems:
        raise RenderError(
            "CASL: a commercial campaign must identify its sender in every language: "
            + " | ".join(problems)
        )


def input_fingerprints(campaign: Campaign) -> dict[str, str]:
    """Hashes of the YAML, the list files and the template folder, to detect changes on resume."""

    def digest(paths: Sequence[Path]) -> str:
        h = hashlib.sha256()
        for path in paths:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()

    template_files = sorted(p for p in campaign.template.rglob("*") if p.is_file())
    return {
        "YAML": digest([campaign.source]),
        "member list": digest(list(campaign.contacts.paths)),
        "template": digest(template_files),
    }


def rejected_by_reason(contacts: ContactList) -> dict[str, int]:
    """Rejected rows counted by reason (grouped by its first words)."""
    return dict(Counter(reason_label(r.reason) for r in contacts.rejected))


async def plan(
    prepared: Prepared,
    store: Store,
    force: bool,
    retry_unknown: bool = False,
    retry_failed: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> int:
    """Record the run's inputs and rows (idempotent); how many rows no run holds are due now.

    Runs whose lease expired, or whose process on this host is gone, are taken over first,
    so their rows count as due again. ``retry_failed`` makes `failed` rows due again: every
    one when empty, else those whose reply code matches (``550``, ``55x``, ``4xx``).
    """
    campaign = prepared.campaign
    await store.check_inputs(campaign.name, prepared.fingerprints, force)
    if retry_failed is not None:
        reopened = await store.reopen_failed(campaign.name, retry_failed)
        codes = f" with reply code {' or '.join(retry_failed)}" if retry_failed else ""
        say(f"{reopened} failed members{codes} are due again (same Message-ID)")
    contacts = prepared.contacts
    ids = {c.key: message_id(campaign, c.key) for c in contacts.contacts}
    await store.plan(campaign.name, contacts.contacts, contacts.rejected, ids)
    await expire_dead_local_runs(store, campaign.name)
    await store.recover(campaign.name)
    await store.skip_suppressed(campaign.name, None)  # unsubscribed on any machine
    return await store.count_due(campaign.name, retry_unknown)
