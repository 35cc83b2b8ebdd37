"""A pool of relays: one stream of messages shared by weight, each relay its own ``deliver``.

An async generator cannot be read by several consumers, so one pump reads the run's stream
and hands each message to a relay chosen by smooth weighted round robin (a relay gets its
share, no more: a slow relay slows the run rather than being bypassed). Each relay reads its
own hand-off through its own ``deliver`` call, with its own connections, rate and budget.

A relay whose ``deliver`` ends early (it is down, refuses us, or reached its cap) leaves the
pool: the messages it was given but gave no final verdict for go to the others, and the run
says so in one line. Only when every relay is gone is the relay unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from ..delivery import DeliveryHooks, deliver
from ..delivery.ratelimit import Budget
from ..errors import DeliveryError, RelayUnavailable
from ..models import DeliveryResult, Outcome, OutgoingMessage, RetryPolicy, SmtpConfig, Tries

HAND_OFF = 1  # messages waiting for a relay's own reader: the share is decided late


@dataclass(eq=False)
class _Relay:
    """One relay of the pool and what it holds now."""

    config: SmtpConfig
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    queue: deque[OutgoingMessage] = field(default_factory=deque)
    handed: dict[str, OutgoingMessage] = field(default_factory=dict)  # no final verdict yet
    current: float = 0.0  # smooth weighted round robin
    alive: bool = True


def labelled(hooks: DeliveryHooks, config: SmtpConfig, prefix: bool) -> DeliveryHooks:
    """Hooks that record which relay gave each verdict (and name it in notices of a pool)."""

    def result(outcome: DeliveryResult, retry_at: float | None) -> None:
        hooks.result(replace(outcome, relay=config.label), retry_at)

    def notice(line: str) -> None:
        hooks.notice(f"{config.label}: {line}" if prefix else line)

    return DeliveryHooks(hooks.sending, result, notice, hooks.may_send)


class RelayPool:
    """Delivers one stream of messages through several relays at once."""

    def __init__(self, relays: Sequence[SmtpConfig], stop: asyncio.Event) -> None:
        self.relays = [_Relay(config) for config in relays]
        self.stop = stop
        self.wake = asyncio.Event()
        self.orphans: deque[OutgoingMessage] = deque()  # from relays that left the pool
        self.exhausted = False
        self.failure: BaseException | None = None

    def poke(self) -> None:
        """Wake everyone waiting on the pool's state (each re-checks what it waits for)."""
        wake, self.wake = self.wake, asyncio.Event()
        wake.set()

    def live(self) -> list[_Relay]:
        return [r for r in self.relays if r.alive and not r.stop.is_set()]

    def finished(self) -> bool:
        """Nothing left to hand out and no live relay still working on a message."""
        if self.stop.is_set():
            return True
        if not self.exhausted or self.orphans:
            return False
        # A relay whose deliver is still ending may give its messages back: wait for it.
        return not any(r.queue or r.handed for r in self.relays if r.alive)

    def choose(self, live: list[_Relay]) -> _Relay:
        """Smooth weighted round robin: every relay gets its share, evenly spread."""
        total = sum(r.config.weight for r in live)
        for relay in live:
            relay.current += relay.config.weight
        best = max(live, key=lambda r: r.current)
        best.current -= total
        return best

    async def pump(self, source: AsyncIterator[OutgoingMessage]) -> None:
        """Read the run's stream and hand each message to its relay."""
        try:
            while True:
                wake = self.wake
                live = self.live()
                if self.stop.is_set() or not live or (self.exhausted and not self.orphans):
                    if self.finished() or not live:
                        return
                    await wake.wait()
                    continue
                relay = self.choose(live)
                while relay.alive and not relay.stop.is_set() and len(relay.queue) >= HAND_OFF:
                    await self.wake.wait()
                if not relay.alive or relay.stop.is_set():
                    continue
                if self.orphans:
                    message = self.orphans.popleft()
                else:
                    try:
                        message = await anext(source)
                    except StopAsyncIteration:
                        self.exhausted = True
                        self.poke()
                        continue
                if relay.alive:
                    relay.queue.append(message)  # if it is stopping, leave() passes it on
                else:  # it left while the message was being rendered
                    self.orphans.append(message)
                self.poke()
        except Exception as exc:  # rendering or the claim failed: stop, raise it at the end
            self.failure = exc
            self.stop.set()
            self.poke()
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    async def stream(self, relay: _Relay) -> AsyncIterator[OutgoingMessage]:
        """What one relay's ``deliver`` reads: its hand-off, until the pool is done."""
        while True:
            wake = self.wake
            if relay.stop.is_set():
                return
            if relay.queue:
                message = relay.queue.popleft()
                relay.handed[message.key] = message
                self.poke()
                yield message
                continue
            if self.finished():
                return
            await wake.wait()

    def settled(self, relay: _Relay, result: DeliveryResult) -> None:
        """A verdict: anything but a deferral is final for this relay."""
        if result.outcome is not Outcome.DEFERRED and result.key in relay.handed:
            del relay.handed[result.key]
            self.poke()

    def leave(self, relay: _Relay, why: str, say: Callable[[str], None]) -> None:
        """Take a relay out; what it held without a final verdict goes to the others."""
        relay.alive = False
        self.orphans.extend(relay.queue)
        self.orphans.extend(relay.handed.values())
        relay.queue.clear()
        relay.handed.clear()
        others = [r.config.label for r in self.live()]
        where = f"its share goes to {', '.join(others)}" if others else "no relay is left"
        say(f"relay {relay.config.label} is out of the pool ({why}); {where}")
        self.poke()


async def deliver_pool(
    relays: Sequence[SmtpConfig],
    policy: RetryPolicy,
    messages: AsyncIterator[OutgoingMessage],
    hooks: DeliveryHooks,
    stop: asyncio.Event,
    attempts: dict[str, Tries],
    budget_for: Callable[[SmtpConfig], Budget | None],
) -> str:
    """Deliver ``messages`` through every relay at once; return why the run stopped early.

    One relay is ``deliver`` itself (each verdict labelled with it). Raises
    ``RelayUnavailable`` when every relay of a pool is down or refuses us.
    """
    if len(relays) == 1:
        only = relays[0]
        hooks = labelled(hooks, only, prefix=False)
        return await deliver(only, policy, messages, hooks, stop, attempts, budget_for(only))
    pool = RelayPool(relays, stop)
    reasons: dict[str, str] = {}
    down: set[str] = set()

    async def one(relay: _Relay) -> None:
        inner = labelled(hooks, relay.config, prefix=True)

        def result(outcome: DeliveryResult, retry_at: float | None) -> None:
            inner.result(outcome, retry_at)
            pool.settled(relay, outcome)

        relay_hooks = replace(inner, result=result)
        budget = budget_for(relay.config)
        try:
            why = await deliver(
                relay.config, policy, pool.stream(relay), relay_hooks, relay.stop, attempts, budget
            )
        except DeliveryError as exc:  # no session: down, or refusing us
            why = str(exc)
            down.add(relay.config.label)
        except BaseException:  # the send log or a hook failed: every relay stops
            stop.set()
            raise
        if why and not stop.is_set():
            reasons[relay.config.label] = why
            pool.leave(relay, why, hooks.notice)
        elif relay.alive:
            relay.alive = False
            pool.poke()

    async def relay_stops(relay: _Relay) -> None:
        await relay.stop.wait()  # its deliver stopped taking messages: the pump must know
        pool.poke()

    async def run_stops() -> None:
        await stop.wait()
        for relay in pool.relays:
            relay.stop.set()
        pool.poke()

    watchers = [asyncio.create_task(relay_stops(r)) for r in pool.relays]
    watchers.append(asyncio.create_task(run_stops()))
    pump = asyncio.create_task(pool.pump(messages))
    try:
        ends = await asyncio.gather(*(one(r) for r in pool.relays), return_exceptions=True)
    finally:
        if not pump.done():
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        for watcher in watchers:
            watcher.cancel()
    for end in ends:
        if isinstance(end, BaseException):
            raise end
    if pool.failure is not None:
        raise pool.failure
    if stop.is_set() or pool.finished():
        return ""
    left = "; ".join(f"{label}: {why}" for label, why in reasons.items())
    if down and len(down) == len(reasons):
        raise RelayUnavailable(f"every relay of the pool is unavailable ({left}); nothing burned")
    return f"no relay of the pool can take more ({left})"
