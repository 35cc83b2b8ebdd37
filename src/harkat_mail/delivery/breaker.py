"""The timeout breaker: a relay that stops answering pauses the run instead of being waited out.

After ``TRIP`` tries in a row without an answer the breaker opens: no new message starts, the
run says so, and after a pause one probe session (connect, greeting, EHLO, TLS, AUTH) asks
whether the relay answers again. If it does, sending resumes on trial: until a message is
accepted, one more timeout opens the breaker again and counts as a failed probe (a relay that
greets but never answers RCPT is not waited out member by member). After ``PROBES`` failed
probes the relay counts as unavailable and the run stops with exit 3, members not yet tried
left as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..errors import RelayUnavailable
from ..models import SmtpConfig
from .ratelimit import nap
from .session import SESSION_ERRORS, Session

TRIP = 5  # timeouts in a row (no reply in between) that open the breaker
PROBES = 3  # failed probes before the relay counts as unavailable
LONGEST_PAUSE = 30.0  # seconds


def pause_for(timeout: float) -> float:
    """The pause before each probe: the relay's own timeout, between 1 and 30 s."""
    return min(LONGEST_PAUSE, max(1.0, timeout))


async def opens(config: SmtpConfig, password: str | None) -> bool:
    """The probe: whether one new session opens (greeting, EHLO, TLS, AUTH) within the timeout."""
    session = Session(config, password)
    try:
        await session.ensure()
        return True
    except SESSION_ERRORS:
        return False
    finally:
        await session.drop(polite=True)


class TimeoutBreaker:
    """Counts timeouts in a row; when open, holds new messages back until a probe answers."""

    def __init__(self, relay: str, timeout: float, stop: asyncio.Event) -> None:
        self.relay = relay
        self.pause = pause_for(timeout)
        self.stop = stop
        self.closed = asyncio.Event()  # set: messages may start
        self.closed.set()
        self.in_a_row = 0
        self.trip = TRIP  # 1 on trial after a resume, until a message is accepted
        self.failed = 0  # failed probes since the last accepted message
        self.task: asyncio.Task[bool] | None = None

    def record(self, timed_out: bool, accepted: bool) -> bool:
        """Note one try's outcome; True when it opens the breaker (the caller starts ``run``)."""
        if accepted:
            self.failed, self.trip = 0, TRIP
        self.in_a_row = self.in_a_row + 1 if timed_out else 0
        if self.in_a_row < self.trip or not self.closed.is_set():
            return False
        self.closed.clear()
        return True

    async def gate(self) -> bool:
        """Wait while the breaker is open; False when the run stopped meanwhile."""
        if self.closed.is_set():
            return not self.stop.is_set()
        waiting = asyncio.ensure_future(self.closed.wait())
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stopping.cancel()
        return not self.stop.is_set()

    async def run(
        self, probe: Callable[[], Awaitable[bool]], notice: Callable[[str], None]
    ) -> bool:
        """Pause, probe, resume; False when the relay is to count as unavailable (or stopped)."""
        if self.trip < TRIP:  # the trial after a resume failed
            self.failed += 1
        if self.failed >= PROBES:
            return False
        notice(
            f"the relay at {self.relay} timed out {self.in_a_row} times in a row: "
            f"pausing {self.pause:g} s"
        )
        while self.failed < PROBES:
            if await nap(self.pause, self.stop):
                return False
            if await probe():
                notice(f"the relay at {self.relay} answers again: resuming")
                self.in_a_row, self.trip = 0, 1
                self.closed.set()
                return True
            self.failed += 1
            if self.failed < PROBES:
                notice(f"the relay at {self.relay} still does not answer: pausing {self.pause:g} s")
        return False

    def unavailable(self, timeout: float) -> RelayUnavailable:
        return RelayUnavailable(
            f"the relay at {self.relay} stopped answering: {TRIP} tries in a row got no reply "
            f"within {timeout:g} s, nor did {PROBES} probe sessions; members not yet tried are "
            "left as they were"
        )
