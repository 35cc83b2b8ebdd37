"""Helpers for the send-log tests: the sample campaign's log, old-format logs, the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from harkat_mail.cli import main

# What releases before schema versions wrote (user_version left at 0): version 1 is this
# without the consent column; version 2 is this as it is.
PREVIOUS_RELEASE_SQL = """
CREATE TABLE IF NOT EXISTS campaign (
    name TEXT PRIMARY KEY,
    inputs TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recipient (
    campaign TEXT NOT NULL,
    key TEXT NOT NULL,
    email TEXT NOT NULL,
    member_id TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    row INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER,
    reply TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    consent TEXT NOT NULL DEFAULT '',
    next_attempt_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (campaign, key)
);
CREATE INDEX IF NOT EXISTS recipient_state ON recipient (campaign, state);
"""
VERSION_1_SQL = PREVIOUS_RELEASE_SQL.replace("    consent TEXT NOT NULL DEFAULT '',\n", "")
assert VERSION_1_SQL != PREVIOUS_RELEASE_SQL


def build_old_log(path: Path, sql: str, user_version: int = 0) -> None:
    """An empty log as an earlier release left it: WAL mode, its tables, its user_version."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(sql)
        db.execute(f"PRAGMA user_version = {user_version}")
        db.commit()
    finally:
        db.close()


def send_log_of(campaign_yaml: Path) -> Path:
    """Where the campaign's send_log key points (relative to the YAML's folder)."""
    data = yaml.safe_load(campaign_yaml.read_text(encoding="utf-8"))
    return (campaign_yaml.parent / data["send_log"]).resolve()


def cli(*args: str) -> Result:
    """Run harkat-mail in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(main, list(args))


def send(campaign_yaml: Path, port: int, *extra: str) -> Result:
    """``harkat-mail send CAMPAIGN --smtp smtp://127.0.0.1:PORT --yes``."""
    return cli("send", str(campaign_yaml), "--smtp", f"smtp://127.0.0.1:{port}", "--yes", *extra)


def assert_one_line_error(result: Result, *phrases: str) -> str:
    """Exit 2, nothing raised, exactly one ``harkat-mail: ...`` line on stderr with the phrases."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("harkat-mail: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def read_rows(
    path: Path, sql: str = "SELECT * FROM recipient ORDER BY key"
) -> list[tuple[object, ...]]:
    """Rows read back from the file with a plain sqlite3 connection."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def user_version(path: Path) -> int:
    """The schema version stored in the file."""
    return int(read_rows(path, "PRAGMA user_version")[0][0])


@pytest.fixture
def log_path(project: Path) -> Path:
    """The sample campaign's send-log path (not created)."""
    return send_log_of(project)
