"""Sending: the relay to use, test sends, and ``send``, one run end to end from Python."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ..delivery import DeliveryHooks, deliver, local_relay, password_for
from ..errors import ConfigError
from ..models import (
    Contact,
    DeliveryResult,
    OutgoingMessage,
    RunSummary,
    SmtpConfig,
)
from ..store import open_store
from .prepare import Prepared, plan
from .progress import Progress
from .runner import run_send


@contextlib.contextmanager
def relay_for(prepared: Prepared, smtp: SmtpConfig) -> Iterator[SmtpConfig]:
    """The relay to deliver through: the embedded capture relay is started for ``local``.

    Anything else must get links the unsubscribe server accepts: without the secret the run
    is refused here, in the library, whoever calls it.
    """
    password_for(smtp)  # a missing password is a configuration error before any connection
    if not smtp.local:
        prepared.renderer.unsubscribe.require_secret(smtp.describe())
        yield smtp
        return
    relay = local_relay(prepared.campaign.outbox).start()
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


def send_tests(
    prepared: Prepared, addresses: Sequence[str], smtp: SmtpConfig
) -> list[DeliveryResult]:
    """One ``[TEST]`` message per variant to each staff address; the send log is not touched.

    Each variant is rendered for its first recipient, so staff see real personalisation.
    """
    from ..lists import check_address  # here: render workers import this package, not pandas

    firsts: dict[str, Contact] = {}
    for contact in prepared.contacts.contacts:
        firsts.setdefault(prepared.renderer.language_for(contact), contact)
    messages: list[OutgoingMessage] = []
    for address in addresses:
        email, reason = check_address(address)
        if email is None:
            raise ConfigError(f"--test-to {address}: {reason}")
        for language, contact in sorted(firsts.items()):
            content = prepared.renderer.render(contact)
            content = replace(content, subject=f"[TEST] {content.subject}")
            staff = replace(
                contact,
                key=f"test:{language}:{email.lower()}",
                email=email,
                first_name="",
                last_name="",
            )
            builder = prepared.builders[language]
            messages.append(builder.build(staff, content, content.unsubscribe_url))
    results: list[DeliveryResult] = []

    async def stream() -> AsyncIterator[OutgoingMessage]:
        for message in messages:
            yield message

    async def no_log(_: OutgoingMessage) -> None:
        return None

    hooks = DeliveryHooks(no_log, lambda result, _: results.append(result))
    with relay_for(prepared, smtp) as relay:
        asyncio.run(deliver(relay, replace(prepared.campaign.retry, attempts=1), stream(), hooks))
    return results


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
) -> RunSummary:
    """Plan the campaign in its send log and deliver this run's share; every verdict recorded.

    ``smtp`` is one relay or a pool (default: the campaign's own, ``Campaign.pool``).

    Other runs on the same send log (other processes, other machines) share the work: each
    member is claimed by one run. ``send_log`` overrides the campaign's (a path or a
    ``postgresql://`` URL). Ctrl-C ends the run after the messages in flight.
    """

    async def go() -> RunSummary:
        store = await open_store(send_log or prepared.campaign.send_log)
        try:
            due = await plan(prepared, store, force, retry_unknown)
            relays = prepared.campaign.pool if smtp is None else smtp
            with relays_for(prepared, relays) as relay:
                return await run_send(
                    prepared, store, relay, due=due, retry_unknown=retry_unknown, limit=limit,
                    lease=lease, say=say, progress=progress, pool_from=pool_from,
                )
        finally:
            await store.close()

    return asyncio.run(go())
