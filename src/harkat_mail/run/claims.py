"""How a run takes its share of a campaign: claimed batches, a renewed lease, a shared budget.

Messages are rendered for the batches this run has claimed, a few batches ahead, and only
those: another run on another machine claims the rest. The lease is renewed while the run is
alive; if it is ever lost (the run stalled and another took its rows over) the run stops.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import ClaimLost, HarkatError, SendLogError
from ..models import Contact, Grant, Limits, OutgoingMessage, SmtpConfig, Tries
from ..store import Store
from ..store.protocol import LOST
from .prepare import Prepared
from .renderpool import Rendered, Renderers

CLAIM_BATCH = 250


@dataclass
class ClaimCounts:
    """What this run claimed, and what it gave back because its list lacks the member."""

    claimed: int = 0
    released: int = 0


async def claimed_messages(
    store: Store,
    prepared: Prepared,
    run_id: str,
    renderers: Renderers,
    stop: asyncio.Event,
    attempts: dict[str, Tries],
    on_error: Callable[[str, str], None],
    counts: ClaimCounts,
    limit: int | None = None,
    retry_unknown: bool = False,
) -> AsyncIterator[OutgoingMessage]:
    """Claim due rows batch by batch, render them, yield their messages in list order."""
    campaign = prepared.campaign.name
    by_key = {contact.key: contact for contact in prepared.contacts.contacts}
    ahead: deque[tuple[list[Contact], Awaitable[Sequence[Rendered]]]] = deque()
    more = True
    try:
        while True:
            while more and len(ahead) < renderers.depth and not stop.is_set():
                left = CLAIM_BATCH if limit is None else limit - counts.claimed
                want = min(CLAIM_BATCH, left)
                claims = await store.claim(campaign, run_id, want, retry_unknown) if want else []
                if not claims:
                    more = False
                    break
                counts.claimed += len(claims)
                # Unsubscribed (on any machine sharing this store) since planning: not sent.
                gone = set(await store.skip_suppressed(campaign, run_id))
                claims = [c for c in claims if c.key not in gone]
                # A member this run's list lacks (suppressed here since planning, say) is given
                # back rather than sent on another run's say-so.
                foreign = [c.key for c in claims if c.key not in by_key]
                if foreign:
                    await store.release(campaign, run_id, foreign)
                    counts.released += len(foreign)
                batch = [by_key[c.key] for c in claims if c.key in by_key]
                attempts.update(
                    (c.key, Tries(c.attempts, c.throttled, c.first_tried_at)) for c in claims
                )
                ahead.append((batch, renderers.submit(batch)))
            if not ahead:
                return
            _, pending = ahead.popleft()
            for count, item in enumerate(await pending, start=1):
                if isinstance(item, OutgoingMessage):
                    yield item
                else:
                    on_error(*item)
                if count % 32 == 0:
                    await asyncio.sleep(0)
    finally:
        for _, pending in ahead:  # stopped early: close the renders nobody will await
            if inspect.iscoroutine(pending):
                pending.close()


class Lease:
    """This run's own view of its lease: until when it may still hand a message over.

    Other runs take the rows over once the stored lease has run out; this run stops handing
    messages to the relay a quarter lease before that, counted from when its last successful
    renewal was asked for, so a run stalled past its lease (a suspended laptop, a stopped
    process) never sends what another run now holds.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.valid_until = time.monotonic() + seconds * 0.75

    def renewed(self, asked_at: float) -> None:
        self.valid_until = asked_at + self.seconds * 0.75

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until


async def keep_lease(
    store: Store, run_id: str, lease: Lease, on_failure: Callable[[HarkatError], None]
) -> None:
    """Renew the lease every quarter lease until cancelled; report a loss or a store failure."""
    while True:
        await asyncio.sleep(lease.seconds / 4)
        asked = time.monotonic()
        try:
            if not await store.renew(run_id, lease.seconds):
                on_failure(ClaimLost(f"{store.location}: {LOST}"))
                return
        except HarkatError as exc:
            on_failure(exc)
            return
        except Exception as exc:  # the store's own failure, whatever it is: one line
            on_failure(SendLogError(f"{store.location}: {type(exc).__name__}: {exc}"))
            return
        lease.renewed(asked)


class SharedBudget:
    """The relay's rate and caps, taken from the store so every run shares them."""

    def __init__(self, store: Store, smtp: SmtpConfig) -> None:
        self.store = store
        user = f"{smtp.username}@" if smtp.username else ""
        self.relay = f"{user}{smtp.host}:{smtp.port}"
        self.limits = Limits(smtp.rate, smtp.per_hour, smtp.per_day)

    async def take(self, want: int) -> Grant:
        """Up to ``want`` messages the relay's shared limits allow now."""
        return await self.store.take(self.relay, want, self.limits)


def budget_for(store: Store, smtp: SmtpConfig) -> SharedBudget | None:
    """A shared budget when the relay has any limit; None for an unlimited relay."""
    if smtp.rate is None and smtp.per_hour is None and smtp.per_day is None:
        return None
    return SharedBudget(store, smtp)
