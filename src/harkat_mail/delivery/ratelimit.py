"""One rate limiter shared by every connection of a run, drawing on the relay's shared budget.

The budget (kept by the send log, so it holds for every run on every machine) says how many
messages may start; this limiter spaces them at the run's own pace, which a throttling relay
can slow down. Without a budget (no limits configured) only that pacing applies.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from ..models import Grant


class CapReached(Exception):
    """The daily cap is used up; the run stops and resumes later."""


class Budget(Protocol):
    """A relay's shared budget of messages (``rate``, ``per_hour``, ``per_day``)."""

    async def take(self, want: int) -> Grant: ...


class RateLimiter:
    """Paces message starts at ``rate`` per second, within what ``budget`` grants."""

    def __init__(
        self, rate: float | None, budget: Budget | None = None, pause: float = 1.0
    ) -> None:
        self.rate = rate
        self.configured = rate
        self.budget = budget
        # Messages taken from the budget per request: about a tenth of a second's worth.
        self.chunk = max(1, math.ceil(rate / 10)) if rate else 20
        self.allowance = 0
        self.pause = pause  # after a push-back, nobody starts a message for this long
        self.slowed_at = -1.0
        self.next_at = 0.0
        self.paused_until = 0.0
        self.lock = asyncio.Lock()

    def slow_down(self, observed_rate: float) -> float | None:
        """Halve the rate and pause; None when a slow-down happened just now.

        Several connections see the same push-back at once: one slow-down per pause.
        """
        now = time.monotonic()
        if now - self.slowed_at < self.pause:
            return None
        self.slowed_at = now
        base = self.rate if self.rate else max(observed_rate, 10.0)
        self.rate = max(0.5, base / 2)
        self.paused_until = now + self.pause
        return self.rate

    def speed_up(self) -> None:
        """After a calm stretch, win back speed: +50%, up to the configured rate."""
        if self.rate is None or self.rate == self.configured:
            return
        self.rate *= 1.5
        if self.configured is not None and self.rate >= self.configured:
            self.rate = self.configured
        elif self.configured is None and self.rate > 200:
            self.rate = None

    async def _draw(self) -> None:
        """One message from the shared budget, waiting while it has none to give."""
        while self.budget is not None and self.allowance == 0:
            grant = await self.budget.take(self.chunk)
            if grant.stop:
                raise CapReached(grant.stop)
            if grant.count:
                self.allowance = grant.count
                break
            await asyncio.sleep(min(max(grant.wait, 0.01), 60.0))
        if self.budget is not None:
            self.allowance -= 1

    async def wait(self) -> None:
        """Return when the next message may start; raise ``CapReached`` at the daily cap."""
        async with self.lock:
            await self._draw()
            now = time.monotonic()
            start = max(now, self.next_at, self.paused_until)
            self.next_at = start + (1.0 / self.rate if self.rate else 0.0)
        if start > now:
            await asyncio.sleep(start - now)
