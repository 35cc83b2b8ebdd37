"""Wires the stages: contacts -> render -> message -> delivery -> send log, streaming."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .checks import GMAIL_CLIP_BYTES, check_html, missing_identification
from .contacts import load_contacts
from .dkimsign import DkimSigner
from .errors import RenderError
from .message import message_id
from .mime import VariantMessages
from .models import (
    Campaign,
    Contact,
    ContactList,
    OutgoingMessage,
    RenderedContent,
    RunSummary,
)
from .render import VERIFY_SAMPLE, Renderer, spread
from .reports import Preview, write_previews
from .sendlog import SendLog, reason_label

Progress = Callable[[str], None]
PROGRESS_EVERY = 5.0  # seconds between plain progress lines
CHECKED_PER_VARIANT = 5


@dataclass(frozen=True)
class Prepared:
    """A campaign checked end to end short of sending: list loaded, variants compiled."""

    campaign: Campaign
    contacts: ContactList
    renderer: Renderer
    builders: Mapping[str, VariantMessages]

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
    contacts = load_contacts(campaign.contacts, campaign.language_column, campaign.default_language)
    renderer = Renderer(campaign)
    renderer.prepare(contacts.contacts)
    check_identification(campaign, renderer, contacts.contacts)
    signer = DkimSigner(campaign.dkim) if campaign.dkim else None
    builders = {
        lang: VariantMessages(campaign, lang, renderer.content_language(lang), signer)
        for lang in renderer.languages
    }
    return Prepared(campaign, contacts, renderer, builders)


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


def dry_run(prepared: Prepared, progress: Progress = lambda _: None) -> RunSummary:
    """Render, build and check every message, open no socket, write the preview files."""
    started = time.perf_counter()
    campaign = prepared.campaign
    previews: dict[str, Preview] = {}
    checked: Counter[str] = Counter()
    failures = 0
    for contact in prepared.contacts.contacts:
        language = prepared.renderer.language_for(contact)
        try:
            content, message = prepared.render_message(contact)
        except RenderError as exc:
            failures += 1
            progress(f"render failed: {exc}")
            continue
        preview = previews.get(language)
        if preview is None:
            variant = prepared.renderer.variants[language]
            preview = previews[language] = Preview(
                language,
                campaign.contacts.segment_name,
                contact,
                content,
                message.data,
                list(variant.warnings),
            )
        preview.count += 1
        # Links and images vary little between recipients: check a few; size, every one.
        if checked[language] < CHECKED_PER_VARIANT or len(content.html) > GMAIL_CLIP_BYTES // 4:
            checked[language] += 1
            for warning in check_html(content.html):
                if warning not in preview.warnings:
                    preview.warnings.append(warning)
    index = write_previews(campaign.previews, campaign, list(previews.values()), prepared.contacts)
    return RunSummary(
        campaign=campaign.name,
        dry_run=True,
        planned=len(prepared.contacts.contacts),
        delivered=0,
        deferred=0,
        failed=failures,
        unknown=0,
        skipped=rejected_by_reason(prepared.contacts),
        already_done=0,
        seconds=time.perf_counter() - started,
        previews=index,
        warnings=tuple(w for p in previews.values() for w in p.warnings),
    )


def rejected_by_reason(contacts: ContactList) -> dict[str, int]:
    """Rejected rows counted by reason (grouped by its first words)."""
    return dict(Counter(reason_label(r.reason) for r in contacts.rejected))


def plan(
    prepared: Prepared, log: SendLog, force: bool, retry_unknown: bool = False
) -> list[Contact]:
    """Record the run's inputs and rows; return the contacts due now, in list order."""
    campaign = prepared.campaign
    log.check_inputs(campaign.name, input_fingerprints(campaign), force)
    log.recover(campaign.name)
    contacts = prepared.contacts
    ids = {c.key: message_id(campaign, c.key) for c in contacts.contacts}
    log.plan(campaign.name, contacts.contacts, contacts.rejected, ids)
    due = log.due(campaign.name, retry_unknown=retry_unknown)
    return [c for c in contacts.contacts if c.key in due]
