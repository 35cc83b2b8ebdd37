"""A delivery run: rendered messages stream into the SMTP pool; every verdict into the log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from ..delivery import DeliveryHooks, deliver, local_relay, password_for
from ..errors import ConfigError
from ..lists import check_address
from ..models import (
    Contact,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
    RunSummary,
    SmtpConfig,
)
from ..store import BatchedLog, SendLog
from .prepare import Prepared
from .renderpool import rendered


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run for progress displays."""

    total: int
    sent: int
    deferred: int
    failed: int
    unknown: int
    elapsed: float

    @property
    def done(self) -> int:
        """Recipients with a verdict for now (a deferred one may still be retried)."""
        return self.sent + self.failed + self.unknown + self.deferred

    @property
    def rate(self) -> float:
        """Verdicts per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


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


def send_tests(
    prepared: Prepared, addresses: Sequence[str], smtp: SmtpConfig
) -> list[DeliveryResult]:
    """One ``[TEST]`` message per variant to each staff address; the send log is not touched.

    Each variant is rendered for its first recipient, so staff see real personalisation.
    """
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
    log: SendLog,
    todo: Sequence[Contact],
    smtp: SmtpConfig,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[Progress], None] = lambda _: None,
    pool_from: int | None = None,
) -> RunSummary:
    """Deliver ``todo`` and log every verdict; Ctrl-C ends the run after what is in flight.

    ``pool_from``: from this many recipients on, worker processes render (default 3,000).
    """
    campaign = prepared.campaign
    started = time.perf_counter()
    tally: Counter[Outcome] = Counter()
    final: dict[str, Outcome] = {}
    interrupted = False

    async def run(relay: SmtpConfig) -> str:
        nonlocal interrupted
        batched = BatchedLog(log, campaign.name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            say("interrupted: finishing the messages in flight; run send again to resume")
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_interrupt)

        def not_rendered(key: str, error: str) -> None:
            on_result(DeliveryResult(key, Outcome.FAILED, None, f"not rendered: {error}"), None)

        async def on_sending(message: OutgoingMessage) -> None:
            await batched.sending(message.key)

        def on_result(result: DeliveryResult, retry_at: float | None) -> None:
            batched.record(result, retry_at)
            previous = final.get(result.key)
            if previous is not None:
                tally[previous] -= 1
            final[result.key] = result.outcome
            tally[result.outcome] += 1
            progress(
                Progress(
                    len(todo),
                    tally[Outcome.SENT],
                    tally[Outcome.DEFERRED],
                    tally[Outcome.FAILED],
                    tally[Outcome.UNKNOWN],
                    time.perf_counter() - started,
                )
            )

        try:
            return await deliver(
                relay,
                campaign.retry,
                rendered(prepared, todo, not_rendered, pool_from),
                DeliveryHooks(on_sending, on_result, say),
                stop,
                log.attempts(campaign.name),
                log.recent_sends(time.time() - 86400),
            )
        finally:
            await batched.close()
            loop.remove_signal_handler(signal.SIGINT)

    with relay_for(prepared, smtp) as relay:
        stopped_because = asyncio.run(run(relay))
    counts = log.counts(campaign.name)
    return RunSummary(
        campaign=campaign.name,
        dry_run=False,
        planned=len(todo),
        delivered=tally[Outcome.SENT],
        deferred=tally[Outcome.DEFERRED],
        failed=tally[Outcome.FAILED],
        unknown=tally[Outcome.UNKNOWN],
        skipped=log.skipped_reasons(campaign.name),
        already_done=counts.get("sent", 0) - tally[Outcome.SENT],
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        stopped_because=stopped_because,
    )
