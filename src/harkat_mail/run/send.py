"""Sending: the relay to use, and ``send``, one run end to end from Python."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..delivery import local_relay, password_for
from ..models import (
    RunSummary,
    SmtpConfig,
)
from ..store import open_store
from .prepare import Prepared, plan
from .progress import Progress
from .runner import run_send
from .schedule import Clock, SystemClock, wait_until


@contextlib.contextmanager
def relay_for(
    prepared: Prepared, smtp: SmtpConfig, outbox: Path | None = None
) -> Iterator[SmtpConfig]:
    """The relay to deliver through: the embedded capture relay is started for ``local``.

    The capture relay files into ``outbox`` (default: the campaign's).
    Anything else must get links the unsubscribe server accepts: without the secret the run
    is refused here, in the library, whoever calls it.
    """
    password_for(smtp)  # a missing password is a configuration error before any connection
    if not smtp.local:
        prepared.renderer.unsubscribe.require_secret(smtp.describe())
        yield smtp
        return
    relay = local_relay(outbox or prepared.campaign.outbox).start()
    try:
        yield replace(smtp, host=relay.host, port=relay.port, tls="none")
    finally:
        relay.stop()


@contextlib.contextmanager
def relays_for(
    prepared: Prepared, relays: SmtpConfig | Sequence[SmtpConfig]
) -> Iterator[tuple[SmtpConfig, ...]]:
    """``relay_for`` for a pool: every relay checked before the first connection."""
    if isinstance(relays, SmtpConfig):
        relays = (relays,)
    if len(relays) == 1:
        with relay_for(prepared, relays[0]) as only:
            yield (only,)
        return
    for relay in relays:  # a pool is never the capture relay (the YAML refuses it)
        password_for(relay)
        prepared.renderer.unsubscribe.require_secret(relay.describe())
    yield tuple(relays)


def send(
    prepared: Prepared,
    smtp: SmtpConfig | Sequence[SmtpConfig] | None = None,
    *,
    send_log: str | Path | None = None,
    force: bool = False,
    retry_unknown: bool = False,
    limit: int | None = None,
    lease: float | None = None,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[Progress], None] = lambda _: None,
    pool_from: int | None = None,
    at: datetime | None = None,
    clock: Clock | None = None,
) -> RunSummary:
    """Plan the campaign in its send log and deliver this run's share; every verdict recorded.

    ``smtp`` is one relay or a pool (default: the campaign's own, ``Campaign.pool``).

    Other runs on the same send log (other processes, other machines) share the work: each
    member is claimed by one run. ``send_log`` overrides the campaign's (a path or a
    ``postgresql://`` URL). Ctrl-C ends the run after the messages in flight.
    ``at`` (see ``parse_at``): wait until then first. ``clock``: where time is read.
    """
    clock = clock or SystemClock()

    async def go() -> RunSummary:
        if at is not None:
            await wait_until(at, clock)
        store = await open_store(send_log or prepared.campaign.send_log)
        try:
            due = await plan(prepared, store, force, retry_unknown)
            relays = prepared.campaign.pool if smtp is None else smtp
            with relays_for(prepared, relays) as relay:
                return await run_send(
                    prepared, store, relay, due=due, retry_unknown=retry_unknown, limit=limit,
                    lease=lease, say=say, progress=progress, pool_from=pool_from, clock=clock,
                )
        finally:
            await store.close()

    return asyncio.run(go())
