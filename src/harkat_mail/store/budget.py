"""Shared relay budgets: ``rate``, ``per_hour`` and ``per_day`` held for every run of a relay.

A token bucket row per relay refills at ``rate`` messages per second up to a small burst;
per-minute counters give the rolling hour and day. Runs take a few messages at a time in one
short transaction, so the limits hold across processes and machines without a database round
trip per message. The SQL is plain enough to run on SQLite and PostgreSQL alike (``?``
placeholders; the PostgreSQL store turns them into ``%s``).

The logic is written once, as ``steps``: a generator that yields each statement and is sent
back the statement's first row. ``take`` drives it over a synchronous SQLite connection; the
PostgreSQL store drives the same generator with ``await`` (it cannot call a sync cursor).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, Protocol

from ..models import Grant, Limits

BURST = 0.25  # seconds of rate a bucket holds: the most a pause can be made up for at once
DAY, HOUR = 1440, 60  # minutes


class Cursor(Protocol):
    """What ``take`` needs of a connection or cursor, on either store."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


# A statement and its parameters; the driver sends back its first row (None when it has none).
Statement = tuple[str, tuple[Any, ...]]
Steps = Generator[Statement, Any, Grant]


def _used(relay: str, since: int) -> Generator[Statement, Any, tuple[int, int | None]]:
    """Messages counted in minutes after ``since``, and the oldest such minute."""
    row = yield (
        "SELECT COALESCE(SUM(sent), 0), MIN(minute) FROM relay_usage"
        " WHERE relay = ? AND minute > ? AND sent > 0",
        (relay, since),
    )
    return int(row[0]), (None if row[1] is None else int(row[1]))


def take(db: Cursor, relay: str, want: int, limits: Limits, now: float) -> Grant:
    """Up to ``want`` messages the relay's limits allow now; call inside a write transaction."""
    plan, row = steps(relay, want, limits, now), None
    try:
        while True:
            sql, params = plan.send(row)
            row = db.execute(sql, params).fetchone()
    except StopIteration as done:
        grant: Grant = done.value
        return grant


def steps(relay: str, want: int, limits: Limits, now: float) -> Steps:
    """``take`` as statements to run in order, inside one write transaction (see above)."""
    minute = int(now // 60)
    counted = limits.per_hour is not None or limits.per_day is not None
    if counted:
        yield ("DELETE FROM relay_usage WHERE relay = ? AND minute <= ?", (relay, minute - DAY))
    if limits.per_day is not None:
        used, oldest = yield from _used(relay, minute - DAY)
        if used >= limits.per_day:
            freed = (oldest or minute) * 60 + 86400
            resume = time.strftime("%Y-%m-%d %H:%M", time.localtime(freed))
            why = f"the daily cap of {limits.per_day} messages is used up; resume after {resume}"
            return Grant(0, stop=why)
        want = min(want, limits.per_day - used)
    if limits.per_hour is not None:
        used, oldest = yield from _used(relay, minute - HOUR)
        if used >= limits.per_hour:
            return Grant(0, wait=max(((oldest or minute) + HOUR) * 60 - now, 1.0))
        want = min(want, limits.per_hour - used)
    grant = want
    if limits.rate is not None:
        row = yield ("SELECT tokens, refilled_at FROM relay_budget WHERE relay = ?", (relay,))
        full = max(1.0, limits.rate * BURST)
        tokens = full if row is None else min(full, row[0] + (now - row[1]) * limits.rate)
        grant = min(want, int(tokens))
        tokens -= grant
        yield (
            "INSERT INTO relay_budget (relay, tokens, refilled_at) VALUES (?, ?, ?)"
            " ON CONFLICT (relay) DO UPDATE SET tokens = excluded.tokens,"
            " refilled_at = excluded.refilled_at",
            (relay, tokens, now),
        )
        if grant < 1:
            return Grant(0, wait=(1 - tokens) / limits.rate)
    if counted and grant:
        yield (
            "INSERT INTO relay_usage (relay, minute, sent) VALUES (?, ?, ?)"
            " ON CONFLICT (relay, minute) DO UPDATE SET sent = relay_usage.sent + excluded.sent",
            (relay, minute, grant),
        )
    return Grant(grant)
