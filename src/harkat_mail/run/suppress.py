"""Hard bounces and complaints into the project's suppression; refusals at RCPT among them.

Where a suppression goes: the send log's shared table when it is PostgreSQL (every sending
machine reads it), else the project's ``suppression.txt``, which every campaign of the project
reads; the send log's own table gets it as well, so this campaign's unsent rows skip it too.
"""

from __future__ import annotations

import asyncio
import time

from ..bounces.reasons import bounce_class, status_in
from ..campaign.loader import project_suppression
from ..models import Campaign, State
from ..store import Store, is_url


async def suppress(campaign: Campaign, store: Store, address: str, why: str) -> bool:
    """Record ``address`` as suppressed with ``why`` (the date is added); True when new."""
    added = await store.add_suppression(address, f"{why} {_today()}", campaign.list_id)
    if is_url(campaign.send_log):
        return added
    from ..lists.suppression import add_suppression  # pandas: never in a render worker

    path = project_suppression(campaign.source)
    try:
        in_file = await asyncio.to_thread(add_suppression, path, address, why, campaign.list_id)
    except ValueError:  # not an address a suppression file can hold: the store has it
        return added
    return added or in_file


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


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
    added = 0
    for key, email, status, reply in hard:
        if await store.mark_bounced(campaign.name, key, "hard", status, reply):
            await suppress(campaign, store, email, f"bounced hard {status}".strip())
            added += 1
    return added
