"""The delivery scheduler: reused sessions, one adaptive rate, retries, stopping cleanly.

Messages stream in; ``connections`` workers each hold one ``Session``. Every refusal is read
through ``replies``: throttling slows the shared limiter (AIMD) and is retried soon on its own
budget; a per-recipient deferral waits out the policy's delay without holding an in-flight
slot or slowing anyone; a relay that refuses us stops the run with members left pending.
Verdicts go to the caller's hooks, which own the send log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import aiosmtplib

from ..errors import RelayUnavailable
from ..models import (
    DeliveryResult,
    Outcome,
    OutgoingMessage,
    RetryPolicy,
    SmtpConfig,
    Tries,
)
from .ratelimit import Budget, CapReached, RateLimiter, nap
from .replies import Kind, classify_reply, connect_failure, hint, is_timeout
from .session import Session, password_for

IN_RUN_RETRY = 900.0  # seconds: a retry due later than this is left to a later run
RECONNECTS = 3  # refused sessions in a row, after deliveries, before the relay counts as down
TIMEOUT_BREAKER = 5  # timeouts in a row (no reply in between) that stop the run
THROTTLE_BREAKER = 60.0  # seconds of throttling replies, nothing accepted, that stop the run
SESSION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)

Item = tuple[OutgoingMessage, bool]  # the message, and whether it holds an in-flight slot


@dataclass
class DeliveryHooks:
    """How delivery reports to its caller (the run owns the send log)."""

    sending: Callable[[OutgoingMessage], Awaitable[None]]
    result: Callable[[DeliveryResult, float | None], None]  # verdict, next try (deferred)
    notice: Callable[[str], None] = lambda _: None
    # Asked right before DATA and before the final dot: False (e.g. the run's lease is about
    # to run out, so another run may take the member over) and the message is not sent.
    may_send: Callable[[], bool] = lambda: True


@dataclass
class _Run:
    """State shared by the workers of one ``deliver`` call."""

    queue: asyncio.Queue[Item | None]
    slots: asyncio.Semaphore
    sessions: list[Session] = field(default_factory=list)
    outstanding: int = 0  # fed and without a final verdict in this run (retries included)
    fed_all: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    retries: set[asyncio.TimerHandle] = field(default_factory=set)
    opening: int = 0
    reconnects: int = 0  # sessions refused in a row after the relay had taken messages
    retired: int = 0
    timeouts: int = 0
    throttles: int = 0
    accepted_at: float = field(default_factory=time.monotonic)
    sent: int = 0
    stop_reason: str = ""
    unavailable: RelayUnavailable | None = None
    failure: BaseException | None = None  # a hook or the budget failed: raised at the end

    def open_sessions(self) -> int:
        return sum(1 for s in self.sessions if _is_open(s))

    def finish(self, slot: bool) -> None:
        """A message is done with for this run (verdict given, or left as it was)."""
        self.outstanding -= 1
        if slot:
            self.slots.release()
        if self.fed_all and self.outstanding == 0:
            self.done.set()


async def deliver(
    config: SmtpConfig,
    policy: RetryPolicy,
    messages: AsyncIterator[OutgoingMessage],
    hooks: DeliveryHooks,
    stop: asyncio.Event | None = None,
    attempts: dict[str, Tries] | None = None,
    budget: Budget | None = None,
) -> str:
    """Send every message over ``config.connections`` reused sessions; return why it stopped.

    Deferred messages are retried in this run after the policy's delays (those due within
    ``IN_RUN_RETRY``) until a budget is used up: ``policy.attempts`` tries for per-recipient
    deferrals, ``policy.throttle_attempts`` throttling replies, ``policy.max_age`` since the
    first try; then they are failed. Setting ``stop`` ends the run after the messages in
    progress. The return value is empty when the run went through its list, else why it
    stopped early. Raises ``RelayUnavailable`` when the relay cannot be used at all.

    ``attempts`` holds the tries already made per key (the caller may add keys while messages
    stream in); ``budget`` is the relay's shared budget (rate and caps across runs).
    """
    password = password_for(config)
    stop = stop or asyncio.Event()
    limiter = RateLimiter(config.rate, budget, stop)
    run = _Run(asyncio.Queue(), asyncio.Semaphore(config.connections * 4))
    tries = {} if attempts is None else attempts
    relay = f"{config.host}:{config.port}"

    def halt(reason: str) -> None:
        if not stop.is_set():
            run.stop_reason = reason
            hooks.notice(reason)
            stop.set()

    def retry_later(message: OutgoingMessage, delay: float) -> None:
        def put() -> None:
            run.retries.discard(handle)
            run.queue.put_nowait((message, False))

        handle = asyncio.get_running_loop().call_later(delay, put)
        run.retries.add(handle)

    def give_up(result: DeliveryResult, why: str) -> DeliveryResult:
        return replace(result, outcome=Outcome.FAILED, reply=f"{why}: {result.reply}")

    def settle(message: OutgoingMessage, slot: bool, result: DeliveryResult) -> None:
        """Record a verdict; schedule a retry, or close the message's slot."""
        if result.outcome is Outcome.LOST:  # never sent: nothing to learn about the relay
            hooks.result(result, None)
            run.finish(slot)
            return
        kind = classify_reply(result.code, result.reply)
        timed_out = result.outcome is not Outcome.SENT and is_timeout(result.code, result.reply)
        run.timeouts = run.timeouts + 1 if timed_out else 0
        if run.timeouts >= TIMEOUT_BREAKER:
            halt(
                f"{relay} did not answer {run.timeouts} tries in a row within {config.timeout:g} s;"
                " stopped instead of waiting out every member"
            )
        if result.outcome is Outcome.SENT:
            run.sent += 1
            run.throttles = 0
            run.accepted_at = time.monotonic()
            limiter.accepted()
        if result.outcome is Outcome.FAILED and kind is Kind.REFUSED:
            # About us, not the recipient: the member stays as it was, and the run stops.
            run.unavailable = run.unavailable or RelayUnavailable(
                f"{relay} refuses us: {result.code} {result.reply.strip()[:120]}"
            )
            stop.set()
            run.finish(slot)
            return
        result = replace(result, tried=True, throttled=kind is Kind.THROTTLE)
        delay: float | None = None
        if result.outcome is Outcome.DEFERRED:
            result, delay = plan_retry(message, result, kind)
        retry_at = time.time() + delay if delay is not None else None
        hooks.result(result, retry_at)
        if delay is not None and delay <= IN_RUN_RETRY and not stop.is_set():
            if slot:  # waiting for its retry, it holds no in-flight slot
                run.slots.release()
            retry_later(message, delay)
        else:
            run.finish(slot)

    def plan_retry(
        message: OutgoingMessage, result: DeliveryResult, kind: Kind
    ) -> tuple[DeliveryResult, float | None]:
        """The verdict for a deferral and its delay (None: no retry, it was failed)."""
        now = time.time()
        old = tries.get(message.key, Tries())
        throttled = kind is Kind.THROTTLE
        now_tries = Tries(old.attempts + 1, old.throttled + throttled, old.first or now)
        tries[message.key] = now_tries
        if throttled:
            run.throttles += 1
            rate = limiter.throttled()
            if rate is not None:
                hooks.notice(
                    f"the relay is throttling ({result.code} {result.reply.strip()[:60]}): "
                    f"slowing down to {rate:.1f} messages/s"
                )
            if time.monotonic() - run.accepted_at > THROTTLE_BREAKER:
                halt(
                    f"{relay} throttled {run.throttles} tries in a row and accepted none for "
                    f"{THROTTLE_BREAKER:g} s; stopped"
                )
            if now_tries.throttled >= policy.throttle_attempts:
                why = f"gave up after {now_tries.throttled} throttling replies"
                return give_up(result, why), None
            delay = policy.throttle_delay(now_tries.throttled)
        else:
            own = now_tries.attempts - now_tries.throttled
            if own >= policy.attempts:
                return give_up(result, f"gave up after {own} attempts"), None
            delay = policy.delay(own)
        assert now_tries.first is not None
        if now + delay - now_tries.first > policy.max_age:
            hours = policy.max_age / 3600
            return give_up(result, f"gave up: still deferred after {hours:g} h"), None
        return result, delay

    async def connect(session: Session, message: OutgoingMessage, slot: bool) -> bool:
        """Open the worker's session; False when it cannot (the message goes back)."""
        if _is_open(session):
            return True
        run.opening += 1
        try:
            await session.ensure()
        except SESSION_ERRORS as exc:
            run.opening -= 1
            await refused(session, exc, message, slot)
            return False
        run.opening -= 1
        run.reconnects = 0
        return True

    async def refused(
        session: Session, exc: BaseException, message: OutgoingMessage, slot: bool
    ) -> None:
        """A session could not be opened: a session limit if others are open, else an outage.

        The message is not the relay's verdict on anyone: it goes back, as it was.
        """
        await session.drop(polite=False)
        # Sessions still opening decide whether this is a limit or an outage.
        while run.opening > 0 and run.open_sessions() == 0 and not stop.is_set():
            await asyncio.sleep(0.01)
        kind, cause = connect_failure(exc)
        if kind is Kind.THROTTLE and run.sent and run.reconnects < RECONNECTS:
            # It took messages a moment ago: a busy relay is worth a few more tries (1, 2, 4 s).
            run.reconnects += 1
            await nap(min(config.timeout, 2.0 ** (run.reconnects - 1)), stop)
            run.queue.put_nowait((message, slot))
            return
        run.queue.put_nowait((message, slot))
        if run.open_sessions() > 0 and kind is Kind.THROTTLE:
            run.retired += 1
            if run.retired == 1:
                hooks.notice(
                    f"{relay} refused another session ({cause}); carrying on with the "
                    f"{run.open_sessions()} already open"
                )
            raise _Retire
        if not stop.is_set():
            run.unavailable = run.unavailable or RelayUnavailable(
                f"cannot connect to {relay}: {cause}; {hint(cause)}"
            )
            stop.set()

    async def feed() -> None:
        try:
            async for message in messages:
                await run.slots.acquire()
                if stop.is_set():
                    run.slots.release()
                    break
                run.outstanding += 1
                run.queue.put_nowait((message, True))
        finally:
            run.fed_all = True
            if run.outstanding == 0:
                run.done.set()
            close = getattr(messages, "aclose", None)
            if close is not None:  # stopped early: let the source release its render workers
                await close()

    async def worker() -> None:
        session = Session(config, password)
        run.sessions.append(session)
        try:
            while True:
                item = await run.queue.get()
                if item is None:
                    return
                message, slot = item
                try:
                    if stop.is_set() or not await limiter.wait():
                        run.finish(slot)  # not started: it stays as it was in the log
                        continue
                    if not await connect(session, message, slot):
                        continue
                    try:
                        result = await session.send(message, hooks.sending, hooks.may_send)
                    except SESSION_ERRORS as exc:  # it closed before this transaction began
                        await refused(session, exc, message, slot)
                        continue
                    settle(message, slot, result)
                except _Retire:
                    return
                except CapReached as exc:
                    halt(str(exc))
                    run.finish(slot)
                except Exception as exc:  # the budget or a hook failed (the send log, say):
                    # stop taking messages, let the others finish, and raise it at the end.
                    # The message was not sent: its row is left as it was.
                    run.failure = run.failure or exc
                    stop.set()
                    run.finish(slot)
        finally:
            await session.drop(polite=True)

    async def stopper() -> None:
        await stop.wait()
        for handle in list(run.retries):  # waiting retries stay deferred in the log
            handle.cancel()
            run.retries.discard(handle)
            run.finish(False)

    workers = [asyncio.create_task(worker()) for _ in range(config.connections)]
    feeder = asyncio.create_task(feed())
    watcher = asyncio.create_task(stopper())
    await run.done.wait()
    for _ in workers:
        run.queue.put_nowait(None)
    await asyncio.gather(*workers)
    watcher.cancel()
    if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
        raise feeder.exception()  # type: ignore[misc]  # rendering broke: say so, loudly
    feeder.cancel()
    if run.failure is not None:
        raise run.failure
    if run.unavailable is not None:
        raise run.unavailable
    return run.stop_reason


def _is_open(session: Session) -> bool:
    """The session is connected and negotiated (transactions may run on it)."""
    if session.client is None:
        return False
    return session.wire.connected if session.wire is not None else session.client.is_connected


class _Retire(Exception):
    """This worker's session was refused while others are open: the worker ends."""
