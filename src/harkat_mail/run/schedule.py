"""When to send: ``--at`` a given local time, and only inside the campaign's ``window:``.

Time comes from a ``Clock`` passed in (the system clock by default), so a schedule can be
tested without waiting for it. Times are read in the campaign's ``timezone:`` (an IANA name;
"" is the machine's own zone).

The window is kept between messages: before each message starts, the run's rate limiter asks
its budget, and ``WindowBudget`` answers only inside the window. Outside it, the run pauses
(its claimed members stay claimed, its lease renewed) and resumes when the window opens.
A message already started when the window closes finishes; with a relay ``rate`` the limiter
draws a tenth of a second's worth of messages at a time, and those may still start.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from ..delivery.ratelimit import Budget
from ..errors import ConfigError
from ..models import Campaign, Grant, SendWindow

PAST_GRACE = timedelta(minutes=1)  # an --at this close behind now means "now"
LONGEST_NAP = 300.0  # seconds: a long wait re-reads the clock (suspend, clock changes)


class Clock(Protocol):
    """Where a run gets the time and waits: the system clock, or a test's own clock."""

    def now(self) -> datetime: ...  # timezone-aware

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def zone(campaign: Campaign) -> tzinfo | None:
    """The campaign's time zone; None for the machine's own."""
    return zoneinfo.ZoneInfo(campaign.timezone) if campaign.timezone else None


def local(moment: datetime, where: tzinfo | None) -> datetime:
    """``moment`` as a wall-clock time in ``where`` (None: the machine's zone)."""
    return moment.astimezone(where) if where is not None else moment.astimezone()


def zone_label(campaign: Campaign) -> str:
    return campaign.timezone or "the machine's time zone"


def parse_at(text: str, campaign: Campaign, now: datetime) -> datetime:
    """``--at "2026-12-01 07:00"`` (ISO 8601, seconds optional) read in the campaign's zone.

    A time with an explicit offset keeps it. A time in the past is refused unless it is
    within a minute (then it means now).
    """
    where = zone(campaign)
    example = 'e.g. --at "2026-12-01 07:00"'
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--at {text!r}: expected a date and time (ISO 8601, seconds optional), {example}, "
            f"read in {zone_label(campaign)}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=where) if where is not None else moment.astimezone()
    if moment < now - PAST_GRACE:
        shown = local(now, where).strftime("%Y-%m-%d %H:%M")
        raise ConfigError(
            f"--at {text!r}: that time has passed (it is {shown} in {zone_label(campaign)}); "
            f"give a time ahead, {example}"
        )
    return moment


def countdown(seconds: float) -> str:
    """``2 h 05 min 07 s`` left."""
    whole = max(int(seconds + 0.999), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


async def wait_until(
    at: datetime,
    clock: Clock,
    tick: Callable[[float], None] = lambda _: None,
    every: float = 1.0,
) -> None:
    """Return at ``at``; ``tick(seconds left)`` before each nap of at most ``every`` seconds.

    Cancelled (Ctrl-C), it stops at once: nothing has been claimed or sent yet.
    """
    while (left := (at - clock.now()).total_seconds()) > 0:
        tick(left)
        await clock.sleep(min(left, every))


def next_opening(window: SendWindow, now: datetime, where: tzinfo | None) -> datetime:
    """The next moment the window opens after ``now`` (outside it)."""
    today = local(now, where)
    for offset in range(8):
        day = (today + timedelta(days=offset)).date()
        if day.weekday() not in window.days:
            continue
        wall = datetime(day.year, day.month, day.day, window.start // 60, window.start % 60)
        opens = wall.replace(tzinfo=where) if where is not None else wall.astimezone()
        if opens > now:
            return opens
    raise ValueError(f"the window {window.label} never opens")  # days is never empty


class WindowGate:
    """The campaign's sending window, shared by every relay of a run: one pause, said once."""

    def __init__(
        self,
        window: SendWindow,
        campaign: Campaign,
        clock: Clock,
        stop: asyncio.Event,
        say: Callable[[str], None],
    ) -> None:
        self.window, self.clock, self.stop, self.say = window, clock, stop, say
        self.where, self.zone_label = zone(campaign), zone_label(campaign)
        self.lock = asyncio.Lock()  # relays wait for the same opening, one of them says so
        self.paused = False

    async def opened(self) -> str:
        """Return once inside the window; a reason instead if the run stops meanwhile."""
        async with self.lock:
            while not self.window.contains(local(self.clock.now(), self.where)):
                if self.stop.is_set():
                    return "stopped while outside the sending window"
                opens = next_opening(self.window, self.clock.now(), self.where)
                if not self.paused:
                    self.paused = True
                    self.say(
                        f"outside the sending window ({self.window.label}): pausing until "
                        f"{local(opens, self.where):%a %Y-%m-%d %H:%M} ({self.zone_label})"
                    )
                left = (opens - self.clock.now()).total_seconds()
                await _nap_or_stop(self.clock, min(max(left, 0.0), LONGEST_NAP), self.stop)
            if self.paused:
                self.paused = False
                self.say(f"inside the sending window ({self.window.label}) again: resuming")
            return ""


class WindowBudget:
    """A relay's budget that grants messages only inside the sending window."""

    def __init__(self, gate: WindowGate, inner: Budget | None = None) -> None:
        self.gate, self.inner = gate, inner

    async def take(self, want: int) -> Grant:
        stopped = await self.gate.opened()
        if stopped:
            return Grant(0, stop=stopped)
        if self.inner is not None:
            return await self.inner.take(want)
        return Grant(1)  # one at a time: the next message asks again, so none starts outside


async def _nap_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep on ``clock``, or less if ``stop`` is set meanwhile."""
    nap = asyncio.ensure_future(clock.sleep(seconds))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({nap, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (nap, stopped):
            task.cancel()


def window_gate(
    campaign: Campaign, clock: Clock, stop: asyncio.Event, say: Callable[[str], None]
) -> WindowGate | None:
    """The campaign's window as a gate for its relays' budgets; None without ``window:``."""
    if campaign.window is None:
        return None
    return WindowGate(campaign.window, campaign, clock, stop, say)


def windowed(inner: Budget | None, gate: WindowGate | None) -> Budget | None:
    """A relay's budget, kept inside the window when the campaign has one."""
    return inner if gate is None else WindowBudget(gate, inner)
