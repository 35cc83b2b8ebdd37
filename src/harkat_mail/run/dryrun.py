"""A dry run: every message rendered, built and checked; previews written; no socket opened."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from ..errors import RenderError
from ..models import RunSummary
from ..render import GMAIL_CLIP_BYTES, check_html
from ..reports import Preview, write_previews
from .prepare import Prepared, rejected_by_reason

CHECKED_PER_VARIANT = 5  # links and images vary little between recipients


def dry_run(prepared: Prepared, say: Callable[[str], None] = lambda _: None) -> RunSummary:
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
            say(f"render failed: {exc}")
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
                letter=prepared.renderer.letter_for(contact),
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
        warnings=(
            *(w for p in previews.values() for w in p.warnings),
            *prepared.renderer.notes,
        ),
    )
