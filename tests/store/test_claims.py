"""Claims, leases and verdicts through the Store protocol, on every store kind.

Each test runs against a real SQLite file and a real PostgreSQL database started by the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from harkat_mail.errors import ClaimLost
from harkat_mail.models import Contact, DeliveryResult, Outcome, Rejected
from harkat_mail.store import BatchedLog, RunInfo, Store, open_store

C = "camp"


def _contacts(n: int) -> list[Contact]:
    return [
        Contact(key=f"m{i}@example.org", email=f"m{i}@example.org", row=i + 1, source="m.csv",
                language="en")
        for i in range(n)
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite")
    return str(request.getfixturevalue("postgres_db"))


def run_with(location: str, body: Callable[[Store], Awaitable[Any]]) -> Any:
    """Open the store, plan 20 members and a rejected row, run ``body``, close."""

    async def go() -> Any:
        store = await open_store(location)
        try:
            contacts = _contacts(20)
            await store.check_inputs(C, {"YAML": "x"}, force=False)
            await store.plan(
                C, contacts, [Rejected("m.csv", 99, "bad@", "invalid address: x")],
                {c.key: f"<{c.key}>" for c in contacts},
            )
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _run(name: str, lease: float = 60.0) -> RunInfo:
    return RunInfo(name, C, "test-host", 1, lease)


def _verdict(key: str, outcome: Outcome, code: int | None = 250) -> tuple[DeliveryResult, None]:
    return DeliveryResult(key, outcome, code, "reply"), None


def test_plan_is_idempotent_and_records_rejected_rows(location: str) -> None:
    """Planning twice keeps one pending row per member and one skipped row with its reason."""

    async def body(store: Store) -> None:
        await store.plan(C, _contacts(20), [], {c.key: "" for c in _contacts(20)})
        assert await store.counts(C) == {"pending": 20, "skipped": 1}
        assert await store.skipped_reasons(C) == {"invalid address": 1}
        assert await store.count_due(C, retry_unknown=False) == 20

    run_with(location, body)


def test_two_runs_never_hold_the_same_member(location: str) -> None:
    """Runs claiming in turn get disjoint batches in list order, and together every member."""

    async def body(store: Store) -> None:
        for name in ("a", "b"):
            await store.start_run(_run(name))
        got: dict[str, list[str]] = {"a": [], "b": []}
        while True:
            a = await store.claim(C, "a", 3, False)
            b = await store.claim(C, "b", 4, False)
            got["a"] += [c.key for c in a]
            got["b"] += [c.key for c in b]
            if not a and not b:
                break
        assert not set(got["a"]) & set(got["b"])
        assert sorted(got["a"] + got["b"]) == sorted(c.key for c in _contacts(20))
        assert got["a"][:3] == ["m0@example.org", "m1@example.org", "m2@example.org"]
        assert await store.count_due(C, False) == 0

    run_with(location, body)


def test_concurrent_claimers_get_disjoint_rows(location: str) -> None:
    """Four runs claiming at once on their own connections never share a member."""

    async def body(store: Store) -> None:
        stores = [await open_store(location) for _ in range(4)]
        try:
            for i, other in enumerate(stores):
                await other.start_run(_run(f"r{i}"))

            async def claimer(i: int) -> list[str]:
                keys: list[str] = []
                while claims := await stores[i].claim(C, f"r{i}", 2, False):
                    keys += [c.key for c in claims]
                return keys

            results = await asyncio.gather(*(claimer(i) for i in range(4)))
        finally:
            for other in stores:
                await other.close()
        flat = [k for keys in results for k in keys]
        assert len(flat) == len(set(flat)) == 20

    run_with(location, body)


def test_verdicts_apply_only_to_held_rows_and_deferrals_stay_held(location: str) -> None:
    """sending then sent/failed/deferred land; a row another run holds is refused, unchanged."""

    async def body(store: Store) -> None:
        await store.start_run(_run("a"))
        await store.start_run(_run("b"))
        held = [c.key for c in await store.claim(C, "a", 3, False)]
        other = [c.key for c in await store.claim(C, "b", 1, False)]
        refused = await store.apply(C, "a", [*held, other[0]])
        assert refused == [other[0]]
        refused = await store.apply(C, "a", [
            _verdict(held[0], Outcome.SENT),
            _verdict(held[1], Outcome.FAILED, 550),
            (DeliveryResult(held[2], Outcome.DEFERRED, 451, "later"), time.time() - 1),
            _verdict(other[0], Outcome.SENT),
        ])
        assert refused == [other[0]]
        counts = await store.counts(C)
        assert counts["sent"] == 1 and counts["failed"] == 1 and counts["deferred"] == 1
        # The deferral is still this run's (it retries in the run) until the run ends.
        assert held[2] not in [c.key for c in await store.claim(C, "b", 50, False)]
        await store.finish_run("a")
        again = await store.claim(C, "b", 50, False)
        assert [(c.key, c.attempts) for c in again] == [(held[2], 1)]

    run_with(location, body)


def test_a_dead_runs_rows_are_taken_over_and_its_late_writes_refused(location: str) -> None:
    """Lease expired: its `sending` row becomes unknown, the rest due again; it can write nothing."""

    async def body(store: Store) -> None:
        await store.start_run(_run("dead", lease=0.2))
        held = [c.key for c in await store.claim(C, "dead", 5, False)]
        assert await store.apply(C, "dead", [held[0]]) == []  # sending, then the run hangs
        await asyncio.sleep(0.3)
        await store.start_run(_run("next"))
        claimed = [c.key for c in await store.claim(C, "next", 50, False)]
        assert held[0] not in claimed and set(held[1:]) <= set(claimed)
        assert (await store.counts(C))["unknown"] == 1
        assert await store.apply(C, "dead", [_verdict(held[0], Outcome.SENT)]) == [held[0]]
        assert not await store.renew("dead", 60)
        with pytest.raises(ClaimLost):
            await store.claim(C, "dead", 1, False)
        assert (await store.counts(C))["unknown"] == 1
        assert held[0] in [c.key for c in await store.claim(C, "next", 50, True)]  # when asked

    run_with(location, body)


def test_expire_takes_a_killed_runs_rows_over_at_once(location: str) -> None:
    """A run known to be dead (its process gone) is taken over without waiting for its lease."""

    async def body(store: Store) -> None:
        await store.start_run(_run("killed"))
        held = [c.key for c in await store.claim(C, "killed", 4, False)]
        await store.apply(C, "killed", [held[0]])
        assert [r.held for r in await store.runs(C)] == [4]
        await store.expire(["killed"])
        assert await store.recover(C) == 1
        assert await store.count_due(C, False) == 19
        assert await store.runs(C) == []

    run_with(location, body)


def test_batched_sending_is_durable_before_it_returns_and_refusal_is_claim_lost(
    location: str,
) -> None:
    """BatchedLog.sending returns once a new connection reads `sending`; an unheld row raises."""

    async def body(store: Store) -> None:
        await store.start_run(_run("a"))
        held = [c.key for c in await store.claim(C, "a", 3, False)]
        batched = BatchedLog(store, C, "a")
        await asyncio.gather(*(batched.sending(k) for k in held))
        reader = await open_store(location, read_only=True)
        try:
            assert (await reader.counts(C))["sending"] == 3
        finally:
            await reader.close()
        with pytest.raises(ClaimLost):
            await batched.sending("m19@example.org")
        batched.record(*_verdict(held[0], Outcome.SENT))
        await batched.close()
        assert (await store.counts(C))["sent"] == 1

    run_with(location, body)


def test_unknown_rows_are_due_only_when_asked(location: str) -> None:
    """An unknown recipient is claimed only by a run that asked to retry unknowns."""

    async def body(store: Store) -> None:
        await store.start_run(_run("a"))
        first = (await store.claim(C, "a", 1, False))[0].key
        await store.apply(C, "a", [first, _verdict(first, Outcome.UNKNOWN, None)])
        assert first not in [c.key for c in await store.claim(C, "a", 50, False)]
        assert await store.count_due(C, True) == 1
        assert [c.key for c in await store.claim(C, "a", 50, True)] == [first]

    run_with(location, body)
