"""The PostgreSQL send log on a real server: plans, claims, take-overs, changes, budgets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import harkat_mail
from harkat_mail.errors import ClaimLost, SendLogError
from harkat_mail.models import DeliveryResult, Outcome, Rejected
from harkat_mail.store.postgres import PostgresStore
from harkat_mail.store.protocol import Claim, Limits, RunInfo
from harkat_mail.store.schema import SCHEMA_VERSION

from .pghelpers import SQLITE_COLUMNS, contacts, planned, planned_and_closed, query, run, sent


def test_plan_is_idempotent(postgres_db: str) -> None:
    """Planning twice adds only new members, keeps list order, and updates a skipped row's reason."""

    async def go() -> None:
        store = await PostgresStore.open(postgres_db)
        first = contacts(3)
        ids = {c.key: f"<{c.key}>" for c in contacts(4)}
        await store.plan("c", first, [Rejected("m.csv", 9, "bad@", "invalid address: x")], ids)
        await store.plan("c", contacts(4), [Rejected("m.csv", 9, "bad@", "duplicate of y")], ids)
        assert await store.counts("c") == {"pending": 4, "skipped": 1}
        assert await store.skipped_reasons("c") == {"duplicate": 1}
        await store.close()

    run(go())
    keys = [
        k
        for (k,) in query(
            postgres_db, "SELECT key FROM recipient WHERE state = 'pending' ORDER BY seq"
        )
    ]
    assert keys == [c.key for c in contacts(4)]
    assert query(postgres_db, "SELECT key, reason FROM recipient WHERE state = 'skipped'") == [
        ("skip:m.csv:9", "duplicate of y")
    ]


def test_claims_come_in_list_order_and_once(postgres_db: str) -> None:
    """A run claims due rows in list order (not key order) and never the same row twice."""

    async def go() -> list[list[Claim]]:
        store, _ = await planned(postgres_db, 30)
        await store.start_run(RunInfo("r1", "c", "h", 1, 60))
        batches = [await store.claim("c", "r1", 12, False) for _ in range(4)]
        await store.close()
        return batches

    batches = run(go())
    assert [len(b) for b in batches] == [12, 12, 6, 0]
    assert [c.key for b in batches for c in b] == [c.key for c in contacts(30)]
    held = query(postgres_db, "SELECT COUNT(*) FROM recipient WHERE run_id = 'r1'")
    assert held == [(30,)]


async def claim_all(store: PostgresStore, run_id: str, batch: int) -> list[str]:
    await store.start_run(RunInfo(run_id, "c", "h", os.getpid(), 60))
    got: list[str] = []
    while claims := await store.claim("c", run_id, batch, False):
        got += [c.key for c in claims]
        await asyncio.sleep(0)  # let the other claimers in between batches
    return got


def test_claims_are_exclusive_across_concurrent_claimers(postgres_db: str) -> None:
    """Four claimers on four connections share 2,000 rows: every key claimed once, by the run that holds it."""

    async def go() -> tuple[list[str], list[list[str]]]:
        store, keys = await planned(postgres_db, 2000)
        others = [await PostgresStore.open(postgres_db) for _ in range(3)]
        stores = [store, *others]
        got = await asyncio.gather(*(claim_all(s, f"r{i}", 50) for i, s in enumerate(stores)))
        for s in stores:
            await s.close()
        return keys, got

    keys, got = run(go())
    every = [key for part in got for key in part]
    assert len(every) == len(set(every)) == 2000
    assert set(every) == set(keys)
    assert all(part for part in got), [len(part) for part in got]  # all four took part
    held = dict(query(postgres_db, "SELECT key, run_id FROM recipient"))
    assert all(held[key] == f"r{i}" for i, part in enumerate(got) for key in part)


CLAIMER = """
import asyncio, json, os, sys
from harkat_mail.store.postgres import PostgresStore
from harkat_mail.store.protocol import RunInfo

async def main(url, run_id):
    store = await PostgresStore.open(url)
    await store.start_run(RunInfo(run_id, "c", "h", os.getpid(), 60))
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start claiming together
    got = []
    while claims := await store.claim("c", run_id, 50, False):
        got += [c.key for c in claims]
    await store.close()
    print(json.dumps(got), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_claims_are_exclusive_across_processes(postgres_db: str) -> None:
    """Two processes claiming the same 2,000 rows at once get disjoint sets that cover them all."""
    keys = run(planned_and_closed(postgres_db, 2000))
    env = {**os.environ, "PYTHONPATH": str(Path(harkat_mail.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, postgres_db, f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    got = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    every = [key for part in got for key in part]
    assert len(every) == len(set(every)) == 2000 and set(every) == set(keys)


def test_expired_run_is_taken_over(postgres_db: str) -> None:
    """After its lease expires, a run's `sending` rows become `unknown`, its held rows go to the next claimer, and its writes are refused."""

    async def go() -> None:
        store, keys = await planned(postgres_db, 20)
        await store.start_run(RunInfo("old", "c", "h", 1, 60))
        await store.start_run(RunInfo("new", "c", "h", 2, 60))
        claimed = [c.key for c in await store.claim("c", "old", 5, False)]
        assert await store.apply("c", "old", claimed[:2]) == []  # two are being sent
        query(postgres_db, "UPDATE run SET lease_until = lease_until - 3600 WHERE id = 'old'")

        taken = [c.key for c in await store.claim("c", "new", 3, False)]
        assert taken == claimed[2:]  # the old run's unstarted rows come first, in list order
        assert await store.apply("c", "old", [sent(claimed[0]), claimed[2]]) == [
            claimed[0], claimed[2]
        ]  # fmt: skip
        assert await store.renew("old", 60) is False
        with pytest.raises(ClaimLost):
            await store.claim("c", "old", 5, False)
        assert [r.id for r in await store.runs("c")] == ["new"]
        await store.close()

    run(go())
    rows = query(
        postgres_db, "SELECT state, reason, run_id, attempts FROM recipient ORDER BY seq LIMIT 5"
    )
    assert rows[:2] == [("unknown", "interrupted while sending", None, 1)] * 2
    assert rows[2:] == [("pending", "", "new", 0)] * 3
    assert query(postgres_db, "SELECT taken_over FROM run WHERE id = 'old'") == [(1,)]


def test_apply_changes_only_held_rows_in_order(postgres_db: str) -> None:
    """apply marks sending (an attempt), records verdicts, keeps a deferral held, and refuses rows the run does not hold."""

    async def go() -> None:
        store, keys = await planned(postgres_db, 6)
        await store.start_run(RunInfo("r", "c", "h", 1, 60))
        a, b, c, d = [x.key for x in await store.claim("c", "r", 4, False)]
        later = time.time() + 600
        assert await store.apply("c", "r", [a, b, c, keys[5]]) == [keys[5]]
        refused = await store.apply(
            "c", "r",
            [sent(a), (DeliveryResult(b, Outcome.DEFERRED, 451, "later"), later),
             (DeliveryResult(c, Outcome.FAILED, 550, "x" * 900), None), b, d],
        )  # fmt: skip
        assert refused == []  # b: deferred then sending again, in that order
        assert await store.apply("c", "r", [sent(a)]) == [a]  # a verdict released it
        assert await store.count_due("c", False) == 2  # keys[4:]; d is held, b is sending
        await store.close()

    run(go())
    rows = {
        key: rest
        for key, *rest in query(
            postgres_db, "SELECT key, state, attempts, code, length(reply), run_id FROM recipient"
        )
    }
    keys = [c.key for c in contacts(6)]
    assert rows[keys[0]] == ["sent", 1, 250, 2, None]
    assert rows[keys[1]] == ["sending", 2, 451, 5, "r"]
    assert rows[keys[2]] == ["failed", 1, 550, 500, None]
    assert rows[keys[3]] == ["sending", 1, None, 0, "r"]
    assert rows[keys[5]] == ["pending", 0, None, 0, None]


def test_finish_run_releases_held_rows(postgres_db: str) -> None:
    """finish_run releases deferred and claimed rows; a row left `sending` becomes `unknown` at the next recover."""

    async def go() -> None:
        store, keys = await planned(postgres_db, 10)
        await store.start_run(RunInfo("r", "c", "h", 1, 60))
        k = [x.key for x in await store.claim("c", "r", 6, False)]
        soon = time.time() - 1  # already due again
        await store.apply("c", "r", [k[0], k[1], k[2]])
        await store.apply(
            "c", "r", [sent(k[0]), (DeliveryResult(k[1], Outcome.DEFERRED, 421, "busy"), soon)]
        )
        await store.finish_run("r")
        assert await store.runs("c") == []
        assert await store.count_due("c", False) == 4 + 3 + 1  # unclaimed, claimed, deferred
        assert await store.recover("c") == 1  # k[2] was still `sending`
        assert (await store.counts("c"))["unknown"] == 1
        await store.close()

    run(go())
    assert query(postgres_db, "SELECT COUNT(*) FROM recipient WHERE run_id IS NOT NULL") == [(0,)]
    assert query(postgres_db, "SELECT finished_at IS NOT NULL FROM run") == [(True,)]


async def take_for(store: PostgresStore, until: float, limits: Limits) -> int:
    got = 0
    while (now := time.monotonic()) < until:
        grant = await store.take("relay", 5, limits)
        got += grant.count
        if not grant.count:
            await asyncio.sleep(min(grant.wait, max(until - now, 0)))
    return got


def test_budget_rate_is_shared_between_senders(postgres_db: str) -> None:
    """Two senders on separate connections taking at rate 50/s for 4 s get 200 messages together (±5%)."""
    limits = Limits(rate=50, per_hour=None, per_day=None)

    async def go() -> int:
        a = await PostgresStore.open(postgres_db)
        b = await PostgresStore.open(postgres_db)
        while (await a.take("relay", 100, limits)).count:  # spend the burst first
            pass
        until = time.monotonic() + 4
        got = sum(await asyncio.gather(take_for(a, until, limits), take_for(b, until, limits)))
        await a.close()
        await b.close()
        return got

    assert 190 <= run(go()) <= 210


def test_budget_caps_per_hour_and_per_day_across_senders(postgres_db: str) -> None:
    """per_hour and per_day caps count every sender's messages; at the cap, a wait or a stop."""

    async def go() -> None:
        a = await PostgresStore.open(postgres_db)
        b = await PostgresStore.open(postgres_db)
        hourly = Limits(rate=None, per_hour=30, per_day=None)
        assert (await a.take("h", 20, hourly)).count == 20
        assert (await b.take("h", 20, hourly)).count == 10
        held = await a.take("h", 1, hourly)
        assert held.count == 0 and 1 <= held.wait <= 3600
        daily = Limits(rate=None, per_hour=None, per_day=25)
        assert [(await s.take("d", 10, daily)).count for s in (a, b, a, b)] == [10, 10, 5, 0]
        stop = await b.take("d", 1, daily)
        assert stop.count == 0 and "daily cap of 25" in stop.stop
        await a.close()
        await b.close()

    run(go())
    assert query(postgres_db, "SELECT relay, SUM(sent) FROM relay_usage GROUP BY relay ORDER BY relay") == [
        ("d", 25), ("h", 30)
    ]  # fmt: skip


def test_rows_follow_the_sqlite_report_columns_and_input_order(postgres_db: str) -> None:
    """rows() yields every row as a dict with SQLite's report columns, ordered by source and row, across pages."""

    async def go() -> list[dict[str, Any]]:
        store = await PostgresStore.open(postgres_db)
        members = contacts(6000, "b.csv") + contacts(5, "a.csv")
        await store.plan("c", members, [], {c.key: "" for c in members})
        rows = [row async for row in store.rows("c")]
        await store.close()
        return rows

    rows = run(go())
    assert list(rows[0]) == SQLITE_COLUMNS
    assert [(r["source"], r["row"]) for r in rows] == [("a.csv", i + 1) for i in range(5)] + [
        ("b.csv", i + 1) for i in range(6000)
    ]


def test_inputs_suppressions_and_runs(postgres_db: str) -> None:
    """Changed inputs are refused unless forced; suppressions are stored once; runs show held rows and expiry."""

    async def go() -> None:
        store, _ = await planned(postgres_db, 5)
        await store.check_inputs("c", {"list": "a"}, force=False)
        with pytest.raises(SendLogError, match="different list; resume with --force"):
            await store.check_inputs("c", {"list": "b"}, force=False)
        await store.check_inputs("c", {"list": "b"}, force=True)
        await store.check_inputs("c", {"list": "b"}, force=False)
        assert await store.add_suppression(" X@Example.org ", "unsubscribe", "l") is True
        assert await store.add_suppression("x@example.org", "bounce", "l") is False
        assert await store.suppressions() == {"x@example.org"}
        await store.start_run(RunInfo("r", "c", "host-a", 7, 0.5))
        await store.claim("c", "r", 2, False)
        (row,) = await store.runs("c")
        assert (row.id, row.host, row.pid, row.held, row.expired) == ("r", "host-a", 7, 2, False)
        await asyncio.sleep(0.6)
        assert (await store.runs("c"))[0].expired is True
        await store.close()

    run(go())


def test_concurrent_first_opens_migrate_once(postgres_db: str) -> None:
    """Four senders opening a new database at once all succeed, and the schema is created once."""

    async def go() -> None:
        stores = await asyncio.gather(*(PostgresStore.open(postgres_db) for _ in range(4)))
        for store in stores:
            await store.close()

    run(go())
    assert query(postgres_db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_expire_and_skip_suppressed(postgres_db: str) -> None:
    """expire() ends a dead run's lease at once; skip_suppressed() skips unsent rows whose address is suppressed, held or not."""

    async def go() -> None:
        store = await PostgresStore.open(postgres_db)
        members = contacts(6)
        await store.plan("c", members, [], {c.key: "" for c in members})
        k = [c.key for c in members]
        await store.start_run(RunInfo("killed", "c", "h", 1, 600))
        await store.start_run(RunInfo("live", "c", "h", 2, 600))
        assert [c.key for c in await store.claim("c", "killed", 2, False)] == k[:2]
        assert [c.key for c in await store.claim("c", "live", 2, False)] == k[2:4]
        await store.expire(["killed"])
        assert await store.recover("c") == 0
        assert [r.id for r in await store.runs("c")] == ["live"]
        for key in (k[0], k[2], k[5]):
            await store.add_suppression(key, "unsubscribe", "l")
        assert sorted(await store.skip_suppressed("c", None)) == sorted([k[0], k[5]])
        assert await store.skip_suppressed("c", "live") == [k[2]]
        assert await store.skipped_reasons("c") == {"suppressed": 3}
        await store.close()

    run(go())
    assert query(postgres_db, "SELECT COUNT(*) FROM recipient WHERE run_id = 'live'") == [(1,)]
