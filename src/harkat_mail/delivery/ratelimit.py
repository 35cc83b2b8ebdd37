"""One rate limiter shared by every connection of a run: per second, per hour, per day."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable


class CapReached(Exception):
    """The rolling per-day cap is used up; the run stops and resumes later."""


class RateLimiter:
    """One limiter for every connection: messages per second plus rolling hour and day caps.

    ``recent`` seeds the caps with the times of earlier sends (from the send log), so a cap
    holds across runs.
    """

    def __init__(
        self,
        rate: float | None,
        per_hour: int | None = None,
        per_day: int | None = None,
        recent: Iterable[float] = (),
        pause: float = 1.0,
    ) -> None:
        self.rate = rate
        self.configured = rate
        self.pause = pause  # after a push-back, nobody starts a message for this long
        self.slowed_at = -1.0
        self.next_at = 0.0
        self.paused_until = 0.0
        self.lock = asyncio.Lock()
        self.per_hour = per_hour
        self.per_day = per_day
        self.sent: deque[float] = deque(sorted(t for t in recent if t > time.time() - 86400))

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

    def _cap_wait(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - 86400:
            self.sent.popleft()
        if self.per_day is not None and len(self.sent) >= self.per_day:
            resume = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.sent[0] + 86400))
            raise CapReached(
                f"the daily cap of {self.per_day} messages is used up; resume after {resume}"
            )
        if self.per_hour is not None:
            in_hour = [t for t in self.sent if t > now - 3600]
            if len(in_hour) >= self.per_hour:
                return in_hour[-self.per_hour] + 3600 - now
        return 0.0

    async def wait(self) -> None:
        """Return when the next message may start; raise ``CapReached`` at the daily cap."""
        async with self.lock:
            while True:
                wait = self._cap_wait(time.time())
                if wait <= 0:
                    break
                await asyncio.sleep(min(wait, 60.0))
            now = time.monotonic()
            start = max(now, self.next_at, self.paused_until)
            self.next_at = start + (1.0 / self.rate if self.rate else 0.0)
            self.sent.append(time.time() + (start - now))
        if start > now:
            await asyncio.sleep(start - now)
