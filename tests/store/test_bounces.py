"""Bounces, complaints and soft-bounce scores in the send log, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkat_mail.models import Outcome
from harkat_mail.store import RunInfo, Store

from .test_claims import C, _verdict, run_with

K = "m0@example.org"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite")
    return str(request.getfixturevalue("postgres_db"))


async def _send_all(store: Store, outcome: Outcome = Outcome.SENT) -> None:
    await store.start_run(RunInfo("r1", C, "test-host", 1, 60.0))
    claims = await store.claim(C, "r1", 100, False)
    await store.apply(C, "r1", [c.key for c in claims])
    await store.apply(C, "r1", [_verdict(c.key, outcome) for c in claims])
    await store.finish_run("r1")


async def _row(store: Store, key: str) -> tuple[str, str, str, str]:
    async for row in store.rows(C):
        if row["key"] == key:
            return row["state"], row["bounce_class"], row["bounce_status"], row["bounce_diagnostic"]
    raise AssertionError(key)


def test_graver_verdicts_replace_milder_ones_and_repeats_change_nothing(location: str) -> None:
    """soft -> block -> hard -> complaint each replace the last; a milder or equal one does not."""

    async def body(store: Store) -> None:
        await _send_all(store)
        assert await store.mark_bounced(C, K, "soft", "4.2.2", "mailbox full")
        assert not await store.mark_bounced(C, K, "soft", "4.2.2", "mailbox full")
        assert await store.mark_bounced(C, K, "block", "5.7.1", "spam")
        assert await store.mark_bounced(C, K, "hard", "5.1.1", "no such user")
        assert not await store.mark_bounced(C, K, "soft", "4.2.2", "mailbox full")
        assert await _row(store, K) == ("bounced", "hard", "5.1.1", "no such user")
        assert await store.mark_bounced(C, K, "complaint", "", "feedback report: abuse")
        assert not await store.mark_bounced(C, K, "hard", "5.1.1", "no such user")
        assert (await _row(store, K))[:2] == ("complained", "complaint")
        assert await store.bounce_counts(C) == {"complaint": 1}
        assert (await store.counts(C))["complained"] == 1

    run_with(location, body)


def test_only_sent_rows_take_a_bounce(location: str) -> None:
    """A pending member (never sent) and an unknown key take no bounce."""

    async def body(store: Store) -> None:
        assert not await store.mark_bounced(C, K, "hard", "5.1.1", "x")
        assert not await store.mark_bounced(C, "nobody@example.org", "hard", "5.1.1", "x")
        assert (await _row(store, K))[0] == "pending"

    run_with(location, body)


def test_soft_score_rises_once_a_day_and_is_forgotten_after_30_days(location: str) -> None:
    """+1 per day with a soft bounce (not per bounce); after 30 quiet days it starts again."""

    async def body(store: Store) -> None:
        day = 20000
        assert await store.soft_bounce(K, day) == 1
        assert await store.soft_bounce(K, day) == 1
        assert await store.soft_bounce(K.upper(), day + 1) == 2
        assert await store.soft_bounce(K, day + 3) == 3
        assert await store.soft_bounce(K, day + 2) == 3  # an old report read late adds nothing
        assert await store.soft_bounce(K, day + 3 + 31) == 1
        assert await store.soft_bounce("other@example.org", day) == 1

    run_with(location, body)


def test_processed_bounces_are_remembered(location: str) -> None:
    """A bounce message noted as processed is known as such, once."""

    async def body(store: Store) -> None:
        assert not await store.bounce_seen("abc")
        await store.remember_bounces(["abc"], C)
        await store.remember_bounces(["abc", "abc"], C)
        assert await store.bounce_seen("abc")

    run_with(location, body)
