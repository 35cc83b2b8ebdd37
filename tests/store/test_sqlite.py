"""The SQLite send log specifically: its file format and resume checks (claims: test_claims)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.models import Contact, Rejected
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


