"""The shared relay budget in a real SQLite send log: rate, rolling hour and day, across runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from harkat_mail.models import Limits
from harkat_mail.store import SendLog, SqliteStore, budget


def test_hour_cap_waits_until_the_oldest_minute_leaves_the_window(tmp_path: Path) -> None:
    """Three sends 59 minutes ago fill a per_hour of 3: no grant until that minute rolls out."""
    limits = Limits(rate=None, per_hour=3, per_day=None)
    with SendLog(tmp_path / "log.sqlite") as log:
        now = 1_800_000_000.0  # a fixed clock: minute boundaries are exact
        assert budget.take(log.db, "relay", 3, limits, now - 59 * 60).count == 3
        denied = budget.take(log.db, "relay", 1, limits, now)
        assert denied.count == 0 and denied.wait == 60.0
        assert budget.take(log.db, "relay", 5, limits, now + denied.wait).count == 3


def test_day_cap_stops_with_the_time_to_resume(tmp_path: Path) -> None:
    """A used-up per_day gives no messages and says when the oldest send leaves the day."""
    limits = Limits(rate=None, per_hour=None, per_day=2)
    with SendLog(tmp_path / "log.sqlite") as log:
        now = 1_800_000_000.0
        assert budget.take(log.db, "relay", 5, limits, now).count == 2
        stopped = budget.take(log.db, "relay", 1, limits, now + 3600)
        assert stopped.count == 0 and "daily cap of 2" in stopped.stop and "resume after" in stopped.stop
        assert budget.take(log.db, "other-relay", 1, limits, now + 3600).count == 1


def test_two_runs_share_one_rate(tmp_path: Path) -> None:
    """Two takers on separate connections to one file get 50/s together over 3 s, within 5%."""
    limits = Limits(rate=50.0, per_hour=None, per_day=None)
    path = tmp_path / "log.sqlite"
    SendLog(path).close()

    async def taker(store: SqliteStore, until: float) -> int:
        got = 0
        while time.monotonic() < until:
            grant = await store.take("relay", 5, limits)
            got += grant.count
            await asyncio.sleep(grant.wait if not grant.count else 0.01)
        return got

    async def both() -> int:
        stores = [SqliteStore(path), SqliteStore(path)]
        until = time.monotonic() + 3.0
        try:
            return sum(await asyncio.gather(*(taker(s, until) for s in stores)))
        finally:
            for store in stores:
                await store.close()

    total = asyncio.run(both())
    # 3 s at 50/s plus the bucket's first burst (a quarter second's worth).
    assert 150 * 0.95 <= total <= (150 + 50 * budget.BURST) * 1.05
