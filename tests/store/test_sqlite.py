"""The send log: a real SQLite file whose states tell the truth about every recipient."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.models import Contact, DeliveryResult, Outcome, Rejected
from harkat_mail.store import SendLog


def _contacts(n: int) -> list[Contact]:
    return [
        Contact(
            key=f"m{i}@example.org",
            email=f"m{i}@example.org",
            row=i + 1,
            source="m.csv",
            language="en",
        )
        for i in range(n)
    ]


def _planned(path: Path, n: int = 3) -> SendLog:
    log = SendLog(path)
    contacts = _contacts(n)
    log.plan(
        "c",
        contacts,
        [Rejected("m.csv", 9, "bad@", "invalid address: x")],
        {c.key: f"<{c.key}>" for c in contacts},
    )
    return log


def test_plan_creates_pending_and_skipped_rows(tmp_path: Path) -> None:
    """Planning records each contact as pending and each rejected row as skipped with a reason."""
    log = _planned(tmp_path / "log.sqlite")
    assert log.counts("c") == {"pending": 3, "skipped": 1}
    assert log.skipped_reasons("c") == {"invalid address": 1}
    log.plan("c", _contacts(3), [], {c.key: "" for c in _contacts(3)})  # idempotent
    assert log.counts("c") == {"pending": 3, "skipped": 1}


def test_sent_deferred_failed_and_due(tmp_path: Path) -> None:
    """Only pending and due deferred rows are due; sent and failed never are."""
    log = _planned(tmp_path / "log.sqlite")
    for key, outcome, code in (
        ("m0@example.org", Outcome.SENT, 250),
        ("m1@example.org", Outcome.DEFERRED, 451),
        ("m2@example.org", Outcome.FAILED, 550),
    ):
        log.mark_sending("c", key)
        retry_at = time.time() + 60 if outcome is Outcome.DEFERRED else None
        log.record("c", DeliveryResult(key, outcome, code, "reply"), retry_at)
    assert log.due("c") == set()
    assert log.due("c", now=10**12) == {"m1@example.org"}
    row = next(r for r in log.rows("c") if r["key"] == "m2@example.org")
    assert (row["state"], row["code"], row["attempts"]) == ("failed", 550, 1)


def test_sending_is_committed_and_recovered_as_unknown(tmp_path: Path) -> None:
    """A row left in sending by a dead process is visible to others and becomes unknown."""
    path = tmp_path / "log.sqlite"
    log = _planned(path)
    log.mark_sending("c", "m0@example.org")
    other = sqlite3.connect(path)  # another process's view: committed, not in a transaction
    assert other.execute("SELECT state FROM recipient WHERE key='m0@example.org'").fetchone() == (
        "sending",
    )
    log.close()
    again = SendLog(path)
    assert again.recover("c") == 1
    assert again.counts("c")["unknown"] == 1
    assert "m0@example.org" not in again.due("c")


def test_changed_inputs_refuse_resume_without_force(tmp_path: Path) -> None:
    """A resume whose template changed is refused naming what changed; --force accepts it."""
    log = SendLog(tmp_path / "log.sqlite")
    log.check_inputs("c", {"YAML": "a", "template": "b"}, force=False)
    with pytest.raises(SendLogError, match="different template; resume with --force"):
        log.check_inputs("c", {"YAML": "a", "template": "B"}, force=False)
    log.check_inputs("c", {"YAML": "a", "template": "B"}, force=True)
    log.check_inputs("c", {"YAML": "a", "template": "B"}, force=False)


def test_log_is_in_wal_mode(tmp_path: Path) -> None:
    """The file is a WAL-mode SQLite database readers can open during a send."""
    _planned(tmp_path / "log.sqlite")
    mode = sqlite3.connect(tmp_path / "log.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_unknown_rows_are_due_only_when_asked(tmp_path: Path) -> None:
    """An unknown recipient is not due by default, only with retry_unknown."""
    log = _planned(tmp_path / "log.sqlite")
    log.mark_sending("c", "m0@example.org")
    log.record("c", DeliveryResult("m0@example.org", Outcome.UNKNOWN, None, "no reply"))
    assert "m0@example.org" not in log.due("c")
    assert "m0@example.org" in log.due("c", retry_unknown=True)


def test_batched_log_commits_sending_before_returning(tmp_path: Path) -> None:
    """BatchedLog.sending returns only once another connection can read the committed row."""
    import asyncio

    from harkat_mail.store import BatchedLog

    path = tmp_path / "log.sqlite"
    log = _planned(path)
    seen: list[str] = []

    async def run() -> None:
        batched = BatchedLog(log, "c")
        await asyncio.gather(*(batched.sending(f"m{i}@example.org") for i in range(3)))
        other = sqlite3.connect(path)
        seen.extend(
            s for (s,) in other.execute("SELECT state FROM recipient WHERE state != 'skipped'")
        )
        batched.record(DeliveryResult("m0@example.org", Outcome.SENT, 250, "ok"), None)
        await batched.close()

    asyncio.run(run())
    assert seen == ["sending"] * 3
    assert log.counts("c") == {"sent": 1, "sending": 2, "skipped": 1}
