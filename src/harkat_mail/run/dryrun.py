"""A dry run: every message rendered, built and checked; previews written; nothing sent.

When the campaign's send log already holds it (read only, never created here), the dry run
also says how many members are left to send: after a completed send, 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import HarkatError, RenderError
from ..models import RunSummary, State, send_log_kind
from ..previews import Preview, write_previews
from ..render import GMAIL_CLIP_BYTES, check_html
from ..store import open_store
from .prepare import Prepared, rejected_by_reason
from .testsend import find_member

CHECKED_PER_VARIANT = 5  # links and images vary little between recipients
_LEFT = (State.PENDING.value, State.DEFERRED.value)  # what a plain `send` would still send


async def _left_to_send(prepared: Prepared, location: str | Path) -> int | None:
    """Members of this list a plain ``send`` would still send; None: no send log yet."""
    if send_log_kind(str(location)) == "file" and not Path(location).exists():
        return None
    store = await open_store(location, read_only=True)
    try:
        states = {row["key"]: row["state"] async for row in store.rows(prepared.campaign.name)}
    finally:
        await store.close()
    if not states:
        return None
    return sum(
        1 for c in prepared.contacts.contacts if states.get(c.key, State.PENDING.value) in _LEFT
    )


def left_to_send(
    prepared: Prepared, send_log: str | Path | None, say: Callable[[str], None]
) -> int | None:
    """``_left_to_send``, or None (said why) when the send log cannot be read now."""
    try:
        return asyncio.run(_left_to_send(prepared, send_log or prepared.campaign.send_log))
    except HarkatError as exc:
        say(f"note: cannot read the send log, so the preview does not say what is left: {exc}")
        return None


def dry_run(
    prepared: Prepared,
    say: Callable[[str], None] = lambda _: None,
    preview_for: Sequence[str] = (),
    send_log: str | Path | None = None,
) -> RunSummary:
    """Render, build and check every message, open no relay, write the preview files.

    ``preview_for``: members (address, member id or row) whose own messages are previewed
    too. The send log (``send_log``, else the campaign's) is only read.
    """
    started = time.perf_counter()
    campaign = prepared.campaign
    chosen = [find_member(prepared, member, "--preview-for") for member in preview_for]
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
    shown = list(previews.values())
    for number, contact in enumerate(chosen, start=1):
        content, message = prepared.render_message(contact)
        language = prepared.renderer.language_for(contact)
        shown.append(
            Preview(
                language, campaign.contacts.segment_name, contact, content, message.data,
                check_html(content.html), 1, f"member-{number}", chosen=True,
                letter=prepared.renderer.letter_for(contact),
            )
        )
    left = left_to_send(prepared, send_log, say)
    index = write_previews(campaign.previews, campaign, shown, prepared.contacts, left)
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
        left=left,
    )
