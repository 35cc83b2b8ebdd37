"""Hard bounces and complaints into the project's suppression; refusals at RCPT among them.

Where a suppression goes: the send log's shared table when it is PostgreSQL (every sending
machine reads it), else the project's ``suppression.txt``, which every campaign of the project
reads; the send log's own table gets it as well, so this campaign's unsent rows skip it too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from ..bounces.reasons import bounce_class, status_in
from ..campaign.loader import project_suppression
from ..errors import ContactListError
from ..models import Campaign, State
from ..store import Store, is_url


async def suppress_all(
    campaign: Campaign, store: Store, entries: dict[str, str], today: date | None = None
) -> int:
    """Record each ``address: why`` as suppressed (the date is added); how many are new.

    The store first, one address at a time (a table, cheap); then the project file in one
    locked append for them all: rewriting it per address cost a fifth of ``bounces process``.
    """
    if not entries:
        return 0
    day = (today or datetime.now(UTC).date()).isoformat()
    added: set[str] = set()
    for address, why in entries.items():
        if await store.add_suppression(address, f"{why} {day}", campaign.list_id):
            added.add(address.strip().lower())
    if is_url(campaign.send_log):
        return len(added)
    from ..lists.suppression import add_suppressions  # pandas: never in a render worker

    path = project_suppression(campaign.source)
    try:
        written = await asyncio.to_thread(
            add_suppressions, path, list(entries.items()), campaign.list_id
        )
    except OSError as exc:
        raise ContactListError(
            f"{path}: cannot write the suppression file ({exc.strerror or exc})"
        ) from None
    return len(added | written)


async def record_refusals(campaign: Campaign, store: Store) -> int:
    """Rows the relay refused for good with a hard status (5.1.1 ...) become hard bounces.

    A 5.7.x (policy, reputation, authentication) refusal is a block: never suppressed.
    """
    hard: list[tuple[str, str, str, str]] = []
    async for row in store.rows(campaign.name):
        code, reply = row.get("code"), str(row.get("reply") or "")
        if row["state"] != State.FAILED or not isinstance(code, int) or code < 500:
            continue
        status = status_in(reply)
        if bounce_class(status, reply) == "hard":
            hard.append((row["key"], row["email"], status, reply))
    # Suppressed before the verdict: cut short between the two, the row is still ``failed``
    # and the next run does both again; the other way round it would never be suppressed.
    await suppress_all(campaign, store, {e: f"bounced hard {s}".strip() for _, e, s, _ in hard})
    added = 0
    for key, _, status, reply in hard:
        added += await store.mark_bounced(campaign.name, key, "hard", status, reply)
    return added
