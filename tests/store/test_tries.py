"""Every try that reached the relay is counted, once, across runs, on every store kind.

Each test runs against a real SQLite file and a real PostgreSQL database started by the tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harkat_mail.models import DeliveryResult, Outcome
from harkat_mail.store import Store

from .test_claims import C, _run, run_with

A, B, T = "m0@example.org", "m1@example.org", "m2@example.org"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite")
    return str(request.getfixturevalue("postgres_db"))


def _deferred(key: str, code: int, throttled: bool = False) -> tuple[DeliveryResult, float]:
    result = DeliveryResult(key, Outcome.DEFERRED, code, "4.x.x later", tried=True,
                            throttled=throttled)
    return result, time.time() - 1  # due again at once


def test_tries_count_once_each_across_runs(location: str) -> None:
    """A RCPT deferral counts; a try that reached DATA counts once; throttling apart; rerun sees it."""

    async def body(store: Store) -> list[Any]:
        await store.start_run(_run("one"))
        await store.claim(C, "one", 20, False)
        sent = DeliveryResult(B, Outcome.SENT, 250, "ok", tried=True)
        changes: list[Any] = [_deferred(A, 450), B, (sent, None), _deferred(T, 454, True)]
        assert await store.apply(C, "one", changes) == []
        await store.finish_run("one")
        await store.start_run(_run("two"))
        claims = await store.claim(C, "two", 20, False)
        assert await store.apply(C, "two", [_deferred(A, 450)]) == []
        await store.finish_run("two")
        return claims

    claims = {c.key: c for c in run_with(location, body)}
    assert (claims[A].attempts, claims[A].throttled) == (1, 0)  # as the second run found it
    assert (claims[T].attempts, claims[T].throttled) == (1, 1)
    assert claims[A].first_tried_at is not None and claims[A].first_tried_at <= time.time()
    assert B not in claims  # sent: not due again

    async def rows(store: Store) -> dict[str, Any]:
        return {row["key"]: row async for row in store.rows(C)}

    after = run_with(location, rows)
    assert after[A]["attempts"] == 2 and after[B]["attempts"] == 1 and after[T]["attempts"] == 1
    assert after["m3@example.org"]["attempts"] == 0  # never tried
