"""One sending run on a shared store: register, claim, render, deliver, record, release.

Any number of runs, in any number of processes on any number of machines, can work on one
campaign at once: each claims its own batches, so nobody is sent twice. Ctrl-C, a lost lease
or a failing store all end the run the same way: no new member is taken, the messages in
flight finish, and the run's rows are released (or read `unknown` later if they were mid-send).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..delivery import DeliveryHooks
from ..errors import HarkatError, SendLogError
from ..models import DeliveryResult, Outcome, OutgoingMessage, RunSummary, SmtpConfig, Tries
from ..store import BatchedLog, RunInfo, Store
from . import renderpool
from .claims import ClaimCounts, Lease, budget_for, claimed_messages, keep_lease
from .liveness import HOST
from .prepare import Prepared
from .progress import Progress
from .relaypool import deliver_pool
from .renderpool import Renderers
from .schedule import Clock, SystemClock, window_gate, windowed
from .suppress import record_refusals


@dataclass
class _Tally:
    """Each recipient's latest verdict in this run, counted."""

    started: float = field(default_factory=time.perf_counter)
    final: dict[str, Outcome] = field(default_factory=dict)
    counts: Counter[Outcome] = field(default_factory=Counter)

    def add(self, result: DeliveryResult) -> None:
        previous = self.final.get(result.key)
        if previous is not None:
            self.counts[previous] -= 1
        self.final[result.key] = result.outcome
        self.counts[result.outcome] += 1

    def snapshot(self, total: int) -> Progress:
        c = self.counts
        elapsed = time.perf_counter() - self.started
        return Progress(
            total, c[Outcome.SENT], c[Outcome.DEFERRED], c[Outcome.FAILED], c[Outcome.UNKNOWN],
            elapsed,
        )


async def run_send(
    prepared: Prepared,
    store: Store,
    relay: SmtpConfig | Sequence[SmtpConfig],
    *,
    due: int,
    retry_unknown: bool = False,
    limit: int | None = None,
    lease: float | None = None,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[Progress], None] = lambda _: None,
    pool_from: int | None = None,
    clock: Clock | None = None,
) -> RunSummary:
    """Claim and deliver until nothing is due (or ``limit`` claimed); every verdict recorded.

    ``due`` is how many rows were due when the run started (for progress and for choosing
    render workers); ``relay`` is where to connect (the capture relay already started), or
    a pool of relays delivering together.
    With a ``window:`` in the campaign, messages start only inside it (read on ``clock``).
    """
    campaign = prepared.campaign
    lease = campaign.lease if lease is None else lease
    run = RunInfo(uuid.uuid4().hex, campaign.name, HOST, os.getpid(), lease)
    tally = _Tally()
    total = min(due, limit) if limit is not None else due
    stop = asyncio.Event()
    failures: list[HarkatError] = []
    refused: list[str] = []
    interrupted = False
    claims = ClaimCounts()
    attempts: dict[str, Tries] = {}
    retry_at: dict[str, float] = {}  # members deferred in this run: when each is due

    def fail(error: HarkatError) -> None:
        # Raised once the messages in flight are done: the caller prints it, one line.
        failures.append(error)
        stop.set()

    def on_interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        say("interrupted: finishing the messages in flight; run send again to resume")
        stop.set()

    batched = BatchedLog(store, campaign.name, run.id, refused.extend, fail)

    async def on_sending(message: OutgoingMessage) -> None:
        await batched.sending(message.key)

    def on_result(result: DeliveryResult, due: float | None) -> None:
        if result.outcome is not Outcome.LOST:
            batched.record(result, due)
        if due is not None:
            retry_at[result.key] = due
        else:
            retry_at.pop(result.key, None)
        tally.add(result)
        progress(tally.snapshot(total))

    def may_send() -> bool:
        # Past the local lease deadline another run may hold the member: hand nothing over.
        if held.valid():
            return True
        fail(SendLogError(f"{store.location}: this run could not renew its lease in time; "
                          "it stops, and its members go to the next run"))
        return False

    def not_rendered(key: str, error: str) -> None:
        on_result(DeliveryResult(key, Outcome.FAILED, None, f"not rendered: {error}"), None)

    loop = asyncio.get_running_loop()
    await store.start_run(run)
    held = Lease(lease)
    renewer = asyncio.create_task(keep_lease(store, run.id, held, fail))
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    threshold = renderpool.POOL_FROM if pool_from is None else pool_from
    stopped_because = ""
    try:
        with Renderers(prepared, use_workers=total >= threshold) as renderers:
            source = claimed_messages(
                store, prepared, run.id, renderers, stop, attempts, not_rendered, claims,
                limit, retry_unknown,
            )
            hooks = DeliveryHooks(on_sending, on_result, say, may_send)
            relays = (relay,) if isinstance(relay, SmtpConfig) else tuple(relay)
            gate = window_gate(campaign, clock or SystemClock(), stop, say)
            stopped_because = await deliver_pool(
                relays, campaign.retry, source, hooks, stop, attempts,
                lambda config: windowed(budget_for(store, config), gate),
            )
    except HarkatError as exc:  # a claim that failed or was refused
        fail(exc)
    finally:
        renewer.cancel()
        loop.remove_signal_handler(signal.SIGINT)
        with contextlib.suppress(HarkatError):
            await batched.close()  # a failure here is already in ``failures``
        # A store that failed (or took this run over) is not written to again: the lease
        # expires and the next run takes the rows over.
        if not any(isinstance(f, SendLogError) for f in failures):
            await store.finish_run(run.id)
    if failures:
        c = tally.counts
        if tally.final:  # a run stopped before its first verdict has nothing to add
            say(
                f"{campaign.name}: before it stopped, this run delivered {c[Outcome.SENT]}, "
                f"deferred {c[Outcome.DEFERRED]}, failed {c[Outcome.FAILED]}, "
                f"unknown {c[Outcome.UNKNOWN]}"
            )
        raise failures[0]
    c = tally.counts
    if c[Outcome.FAILED]:  # a 5.1.1 at RCPT is a hard bounce: suppressed like one
        await record_refusals(campaign, store)
    counts = await store.counts(campaign.name)
    if refused:
        say(f"{len(refused)} verdicts were refused: another run holds those members now")
    return RunSummary(
        campaign=campaign.name,
        dry_run=False,
        planned=claims.claimed - claims.released,
        delivered=c[Outcome.SENT],
        deferred=c[Outcome.DEFERRED],
        failed=c[Outcome.FAILED],
        unknown=c[Outcome.UNKNOWN],
        skipped=await store.skipped_reasons(campaign.name),
        already_done=counts.get("sent", 0) - c[Outcome.SENT],
        seconds=time.perf_counter() - tally.started,
        interrupted=interrupted,
        stopped_because=stopped_because,
        lost=c[Outcome.LOST] + len(refused),
        next_retry_at=min(retry_at.values()) if retry_at else None,
    )
