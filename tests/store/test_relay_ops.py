"""The relay column, reopening failed rows, and forced resumes, on every store kind.

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


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite")
    return str(request.getfixturevalue("postgres_db"))


async def _verdicts(store: Store, verdicts: list[tuple[int, Outcome, int | None, str]]) -> None:
    """A run claims every row and records ``(member, outcome, code, relay)`` for some."""
    await store.start_run(_run("a"))
    await store.claim(C, "a", 20, False)
    changes: list[Any] = [f"m{i}@example.org" for i, *_ in verdicts]
    for i, outcome, code, relay in verdicts:
        retry = time.time() + 3600 if outcome is Outcome.DEFERRED else None
        result = DeliveryResult(f"m{i}@example.org", outcome, code, "reply", relay)
        changes.append((result, retry))
    assert await store.apply(C, "a", changes) == []
    await store.finish_run("a")


def test_each_verdict_records_its_relay_in_the_report_rows(location: str) -> None:
    """The relay that gave a verdict is in the row's `relay` column, after the times."""

    async def body(store: Store) -> list[dict[str, Any]]:
        await _verdicts(
            store,
            [(0, Outcome.SENT, 250, "a.example:25"), (1, Outcome.FAILED, 550, "b.example:587")],
        )
        return [row async for row in store.rows(C)]

    rows = {r["key"]: r for r in run_with(location, body)}
    columns = list(rows["m0@example.org"])
    assert columns[columns.index("updated_at") + 1] == "relay"
    assert rows["m0@example.org"]["relay"] == "a.example:25"
    assert rows["m1@example.org"]["relay"] == "b.example:587"
    assert rows["m2@example.org"]["relay"] == ""  # never tried


def test_reopen_failed_matches_reply_codes_and_resets_attempts(location: str) -> None:
    """Only failed rows whose code matches become pending, with no attempt spent."""

    async def body(store: Store) -> tuple[int, int, int, dict[str, Any]]:
        await _verdicts(
            store,
            [
                (0, Outcome.FAILED, 550, "r:25"),
                (1, Outcome.FAILED, 554, "r:25"),
                (2, Outcome.FAILED, 450, "r:25"),
                (3, Outcome.FAILED, None, "r:25"),
                (4, Outcome.SENT, 250, "r:25"),
            ],
        )
        exact = await store.reopen_failed(C, ["550"])
        family = await store.reopen_failed(C, ["4xx", "55x"])
        rest = await store.reopen_failed(C, [])
        rows = {r["key"]: r for r in [row async for row in store.rows(C)]}
        return exact, family, rest, rows

    exact, family, rest, rows = run_with(location, body)
    assert (exact, family, rest) == (1, 2, 1)
    for i in range(4):
        assert rows[f"m{i}@example.org"]["state"] == "pending"
        assert rows[f"m{i}@example.org"]["attempts"] == 0
    assert rows["m4@example.org"]["state"] == "sent"


def test_forced_resume_makes_deferred_rows_due_at_once(location: str) -> None:
    """After a forced change of inputs, rows deferred for an hour are due now; unforced, not."""

    async def body(store: Store) -> tuple[float | None, int, int]:
        await _verdicts(store, [(i, Outcome.DEFERRED, 451, "r:25") for i in range(3)])
        due_at = await store.next_attempt(C)
        before = await store.count_due(C, False)
        await store.check_inputs(C, {"YAML": "changed"}, force=True)
        return due_at, before, await store.count_due(C, False)

    due_at, before, after = run_with(location, body)
    assert due_at is not None and due_at > time.time() + 3000
    assert (before, after) == (17, 20)
