"""The delivery scheduler: reused sessions, one shared rate limit, retries, stopping cleanly.

Messages stream in; ``connections`` workers each hold one ``Session``; a deferred message is
retried after the policy's delay until its attempts are used up; throttling slows the shared
limiter. Verdicts go to the caller's hooks, which own the send log.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib

from ..errors import DeliveryError
from ..models import DeliveryResult, Outcome, OutgoingMessage, RetryPolicy, SmtpConfig
from .ratelimit import Budget, CapReached, RateLimiter
from .session import Session, password_for

MAX_CONNECT_FAILURES = 3
THROTTLE_CODES = (421, 450, 451, 452, 454)
_THROTTLE_TEXT = re.compile(r"rate|too many|throttl|slow down|try again later", re.I)
THROTTLE_STREAK = 3  # this many 4xx in a row across connections reads as throttling
CALM_STREAK = 50  # deliveries in a row after which a slowed-down run speeds up again


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

    queue: asyncio.Queue[OutgoingMessage | None]
    slots: asyncio.Semaphore
    outstanding: int = 0
    fed_all: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    retries: set[asyncio.TimerHandle] = field(default_factory=set)
    streak: int = 0
    calm: int = 0
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    stop_reason: str = ""
    failure: BaseException | None = None  # a hook or the budget failed: raised at the end

    def finish_one(self) -> None:
        self.outstanding -= 1
        self.slots.release()
        if self.fed_all and self.outstanding == 0:
            self.done.set()


async def deliver(
    config: SmtpConfig,
    policy: RetryPolicy,
    messages: AsyncIterator[OutgoingMessage],
    hooks: DeliveryHooks,
    stop: asyncio.Event | None = None,
    attempts: dict[str, int] | None = None,
    budget: Budget | None = None,
) -> str:
    """Send every message over ``config.connections`` reused sessions; return why it stopped.

    Deferred messages are retried in this run after the policy's delays until their attempts
    are used up (then failed). Throttling replies slow everyone down and do not use up an
    attempt. Setting ``stop`` ends the run after the messages in progress. The return value is
    empty when the run went through its list, else the reason it stopped early.

    ``attempts`` holds the tries already made per key (the caller may add keys while messages
    stream in); ``budget`` is the relay's shared budget (rate and caps across runs).
    """
    password = password_for(config)
    stop = stop or asyncio.Event()
    limiter = RateLimiter(config.rate, budget, policy.throttle_pause)
    run = _Run(asyncio.Queue(), asyncio.Semaphore(config.connections * 4))
    attempts = {} if attempts is None else attempts

    def retry_later(message: OutgoingMessage, delay: float) -> None:
        def put() -> None:
            run.retries.discard(handle)
            run.queue.put_nowait(message)

        handle = asyncio.get_running_loop().call_later(delay, put)
        run.retries.add(handle)

    def settle(message: OutgoingMessage, result: DeliveryResult) -> None:
        """Record a verdict; schedule a retry or close the message's slot."""
        if result.outcome is Outcome.LOST:  # never sent: nothing to learn about the relay
            hooks.result(result, None)
            run.finish_one()
            return
        throttled = result.outcome is Outcome.DEFERRED and (
            is_throttling(result) or run.streak + 1 >= THROTTLE_STREAK
        )
        run.streak = run.streak + 1 if result.outcome is Outcome.DEFERRED else 0
        if result.outcome is Outcome.SENT:
            run.sent += 1
            run.calm += 1
            if run.calm >= CALM_STREAK:
                run.calm = 0
                limiter.speed_up()
        if throttled:
            run.calm = 0
            elapsed = max(time.monotonic() - run.started, 0.001)
            rate = limiter.slow_down(run.sent / elapsed)
            if rate is not None:
                hooks.notice(
                    f"the relay is pushing back ({result.code} {result.reply.strip()[:60]}): "
                    f"slowing down to {rate:.1f} messages/s"
                )
            run.streak = 0
        else:
            attempts[message.key] = attempts.get(message.key, 0) + 1
        retry = result.outcome is Outcome.DEFERRED and not stop.is_set()
        if retry and attempts.get(message.key, 0) >= policy.attempts:
            result = DeliveryResult(
                message.key,
                Outcome.FAILED,
                result.code,
                f"gave up after {policy.attempts} attempts: {result.reply}",
            )
            retry = False
        delay = policy.throttle_pause if throttled else policy.delay(attempts.get(message.key, 1))
        hooks.result(result, time.time() + delay if result.outcome is Outcome.DEFERRED else None)
        if retry:
            retry_later(message, delay)
        else:
            run.finish_one()

    async def feed() -> None:
        try:
            async for message in messages:
                await run.slots.acquire()
                if stop.is_set():
                    run.slots.release()
                    break
                run.outstanding += 1
                run.queue.put_nowait(message)
        finally:
            run.fed_all = True
            if run.outstanding == 0:
                run.done.set()
            close = getattr(messages, "aclose", None)
            if close is not None:  # stopped early: let the source release its render workers
                await close()

    async def worker() -> None:
        session = Session(config, password)
        connect_failures = 0
        try:
            while True:
                message = await run.queue.get()
                if message is None:
                    return
                if stop.is_set():  # not started: it stays pending in the log
                    run.finish_one()
                    continue
                try:
                    await limiter.wait()
                    try:
                        result = await session.send(message, hooks.sending, hooks.may_send)
                        connect_failures = 0
                    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                        connect_failures += 1
                        code = getattr(exc, "code", None)
                        reason = f"cannot open a session with {config.describe()}: {exc}"
                        if connect_failures >= MAX_CONNECT_FAILURES or _is_fatal(exc):
                            run.stop_reason = reason
                            stop.set()
                        # A session that cannot be opened says nothing about this recipient.
                        result = DeliveryResult(message.key, Outcome.DEFERRED, code, reason)
                    settle(message, result)
                except CapReached as exc:
                    run.stop_reason = str(exc)
                    stop.set()
                    run.finish_one()
                except Exception as exc:  # the budget or a hook failed (the send log, say):
                    # stop taking messages, let the others finish, and raise it at the end.
                    # The message was not sent: its row is left as it was.
                    run.failure = run.failure or exc
                    stop.set()
                    run.finish_one()
        finally:
            await session.drop(polite=True)

    async def stopper() -> None:
        await stop.wait()
        for handle in list(run.retries):  # waiting retries stay deferred in the log
            handle.cancel()
            run.retries.discard(handle)
            run.finish_one()

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
    if run.stop_reason and "cannot open a session" in run.stop_reason and run.sent == 0:
        raise DeliveryError(f"{run.stop_reason}; nothing was sent")
    return run.stop_reason


def is_throttling(result: DeliveryResult) -> bool:
    """A 4xx whose text says the relay wants us to send less."""
    return result.code in THROTTLE_CODES and bool(_THROTTLE_TEXT.search(result.reply))


def _is_fatal(exc: BaseException) -> bool:
    """Errors that retrying cannot fix: TLS refused or unverifiable, authentication refused."""
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPAuthenticationError):
        return True
    if isinstance(exc.__cause__, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return True  # implicit TLS: aiosmtplib wraps the handshake failure
    return isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc)
