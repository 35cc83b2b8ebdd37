"""One rate limiter shared by every connection of a run, drawing on the relay's shared budget.

The budget (kept by the send log, so it holds for every run on every machine) says how many
messages may start; this limiter spaces them at the run's own pace, which adapts to a
throttling relay by AIMD, the way TCP finds a link's capacity:

- a throttling reply cuts the rate to ``DECREASE`` (3/4) of what the relay accepted over the
  last ``WINDOW`` (of what was sent, if it accepted nothing), at most once per window (the
  replies to messages already on their way say nothing new);
- while messages are accepted, the rate climbs back by a fixed step per second, sized so
  that the cut is won back in ``RECOVER`` seconds; it never goes above the configured
  ``rate`` (the ceiling) nor below ``FLOOR``.

Without a configured ``rate`` nothing paces the run until the relay first throttles it; from
then on it starts from 3/4 of the rate it was sending at, with no ceiling but the relay's.
Every wait returns early when the run is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from typing import Protocol

from ..models import Grant

FLOOR = 1.0  # messages/s: the slowest a throttling relay can push the run to
DECREASE = 0.75  # the multiplicative cut on a throttling reply
WINDOW = 1.0  # seconds: at most one cut per window
RECOVER = 5.0  # seconds to climb back from a cut to where it was


class CapReached(Exception):
    """The daily cap is used up; the run stops and resumes later."""


class Budget(Protocol):
    """A relay's shared budget of messages (``rate``, ``per_hour``, ``per_day``)."""

    async def take(self, want: int) -> Grant: ...


async def nap(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep ``seconds`` or until ``stop`` is set; True when the run was stopped."""
    if stop.is_set():
        return True
    if seconds <= 0:
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


class RateLimiter:
    """Paces message starts at an adaptive rate, within what ``budget`` grants."""

    def __init__(
        self,
        rate: float | None,
        budget: Budget | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.ceiling = rate
        self.rate = rate  # None: unpaced
        self.budget = budget
        self.stop = stop or asyncio.Event()
        # Messages taken from the budget per request: about a tenth of a second's worth.
        self.chunk = max(1, math.ceil(rate / 10)) if rate else 20
        self.allowance = 0
        self.step = 0.0  # messages/s gained per second since the last cut
        self.cut_at = -math.inf
        self.grown_at = time.monotonic()
        self.next_at = 0.0
        self.starts: deque[float] = deque()  # start times within the last window
        self.accepts: deque[float] = deque()  # acceptance times within the last window
        self.first_start = 0.0
        self.lock = asyncio.Lock()

    def _recent_rate(self, times: deque[float], now: float) -> float:
        """Events per second over the last window."""
        while times and times[0] < now - WINDOW:
            times.popleft()
        span = min(WINDOW, max(now - self.first_start, WINDOW / 2))  # a burst is no rate
        return len(times) / span

    def throttled(self) -> float | None:
        """A throttling reply: cut the rate; None when it was cut within the last window."""
        now = time.monotonic()
        if now - self.cut_at < WINDOW:
            return None
        measured = self._recent_rate(self.accepts, now) or self._recent_rate(self.starts, now)
        base = min(self.rate, measured) if self.rate is not None else measured
        self.rate = max(FLOOR, base * DECREASE)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self.step = max(0.5, base * (1 - DECREASE) / RECOVER)
        self.cut_at = self.grown_at = now
        return self.rate

    def accepted(self) -> None:
        """A message went through: the rate climbs by ``step`` per second since last time."""
        now = time.monotonic()
        self.accepts.append(now)
        if len(self.accepts) > 4096:  # only the last window counts; keep the deque short
            self._recent_rate(self.accepts, now)
        if self.rate is None or self.step == 0.0:
            return
        grown = self.rate + self.step * (now - self.grown_at)
        self.grown_at = now
        self.rate = min(grown, self.ceiling) if self.ceiling is not None else grown

    async def _draw(self) -> bool:
        """One message from the shared budget, waiting while it has none; False if stopped."""
        while self.budget is not None and self.allowance == 0:
            grant = await self.budget.take(self.chunk)
            if grant.stop:
                raise CapReached(grant.stop)
            if grant.count:
                self.allowance = grant.count
                break
            if await nap(min(max(grant.wait, 0.01), 60.0), self.stop):
                return False
        if self.budget is not None:
            self.allowance -= 1
        return True

    async def wait(self) -> bool:
        """True when the next message may start, False when the run was stopped meanwhile.

        Raises ``CapReached`` at the daily cap.
        """
        async with self.lock:
            if not await self._draw():
                return False
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + (1.0 / self.rate if self.rate else 0.0)
            if not self.starts:
                self.first_start = start
            self.starts.append(start)
        return not await nap(start - now, self.stop)
