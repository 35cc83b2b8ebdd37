"""Schema versions: old logs migrate on first use and keep their rows; newer ones are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.store import SendLog, schema

from .conftest import (
    PREVIOUS_RELEASE_SQL,
    VERSION_1_SQL,
    assert_one_line_error,
    build_old_log,
    cli,
    read_rows,
    send,
    user_version,
)

# fmt: off
V1_ROWS = [
    # campaign, key, email, member_id, language, source, row, state, reason, attempts, code,
    # reply, message_id, next_attempt_at, created_at, updated_at
    ("c", "a@example.org", "a@example.org", "7", "en", "m.csv", 1, "sent", "", 1, 250,
     "2.0.0 queued", "<a@x>", None, 1.5, 2.5),
    ("c", "b@example.org", "b@example.org", "", "fr", "m.csv", 2, "pending", "", 0, None,
     "", "<b@x>", None, 1.5, 1.5),
    ("c", "skip:m.csv:3", "bad@", "", "", "m.csv", 3, "skipped", "invalid address: x", 0,
     None, "", "", None, 1.5, 1.5),
]
# fmt: on


def _v1_log(path: Path, version: int) -> None:
    build_old_log(path, VERSION_1_SQL, version)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO campaign VALUES ('c', '{}', 1.0)")
        db.executemany(f"INSERT INTO recipient VALUES ({', '.join('?' * 16)})", V1_ROWS)
    db.close()


def _columns(path: Path) -> list[str]:
    return [str(row[1]) for row in read_rows(path, "PRAGMA table_info(recipient)")]


def test_new_log_is_created_at_the_current_version(tmp_path: Path) -> None:
    """A new log records the newest schema version and has every column, consent included."""
    SendLog(tmp_path / "log.sqlite").close()
    assert user_version(tmp_path / "log.sqlite") == schema.SCHEMA_VERSION == 6
    assert {"consent", "relay", "throttled", "first_tried_at"} <= set(_columns(tmp_path / "log.sqlite"))


@pytest.mark.parametrize("stored", [0, 1])
def test_version_1_log_migrates_and_keeps_its_rows(tmp_path: Path, stored: int) -> None:
    """A log without the consent column (user_version 0 or 1) migrates to now, every row kept."""
    path = tmp_path / "log.sqlite"
    _v1_log(path, stored)
    with SendLog(path) as log:
        assert log.counts("c") == {"sent": 1, "pending": 1, "skipped": 1}
    assert user_version(path) == schema.SCHEMA_VERSION
    bounce = ["bounce_class", "bounce_status", "bounce_diagnostic"]  # migration 6
    added = ["consent", "run_id", "throttled", "first_tried_at", "relay", *bounce]
    assert _columns(path)[-8:] == added  # migrations 2 to 6
    assert read_rows(path) == [(*row, "", None, 0, None, "", "", "", "") for row in V1_ROWS]
    assert read_rows(path, "SELECT * FROM campaign") == [("c", "{}", 1.0)]


def test_version_2_log_from_before_versions_is_stamped_unchanged(tmp_path: Path) -> None:
    """A previous release's log (consent column, no version) migrates, keeping its rows."""
    path = tmp_path / "log.sqlite"
    build_old_log(path, PREVIOUS_RELEASE_SQL, 0)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO recipient (campaign, key, email, source, row, state, consent,"
            " created_at, updated_at) VALUES ('c', 'k', 'k@example.org', 's', 1, 'sent',"
            " 'express 2018-01-02', 1, 2)"
        )
    db.close()
    before = read_rows(path)
    SendLog(path).close()
    assert user_version(path) == schema.SCHEMA_VERSION
    # No run holds them, and no try, relay or bounce is known for them.
    assert read_rows(path) == [(*row, None, 0, None, "", "", "", "") for row in before]


def test_newer_log_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A log from a newer release is refused with one line asking to upgrade; bytes unchanged."""
    path = tmp_path / "log.sqlite"
    build_old_log(path, PREVIOUS_RELEASE_SQL, schema.SCHEMA_VERSION + 1)
    before = path.read_bytes()
    with pytest.raises(SendLogError) as raised:
        SendLog(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert "written by a newer harkat-mail" in str(raised.value)
    assert "upgrade" in str(raised.value)
    with pytest.raises(SendLogError, match="newer harkat-mail"):
        SendLog(path, read_only=True)
    assert path.read_bytes() == before


def test_newer_log_stops_send_before_any_message(
    project: Path, log_path: Path, smtp_server
) -> None:
    """send, status and report on a newer log exit 2 with one line; nobody is sent anything."""
    server, handler = smtp_server()
    log_path.parent.mkdir(parents=True)
    build_old_log(log_path, PREVIOUS_RELEASE_SQL, 99)
    assert_one_line_error(send(project, server.port), str(log_path), "newer harkat-mail", "upgrade")
    for command in ("status", "report"):
        assert_one_line_error(cli(command, str(project)), str(log_path), "newer harkat-mail")
    assert handler.connections == 0 and handler.messages == []
    assert user_version(log_path) == 99


def test_failed_migration_leaves_the_log_at_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails part-way is rolled back whole: version and tables as before."""
    path = tmp_path / "log.sqlite"
    SendLog(path).close()
    current = schema.SCHEMA_VERSION
    broken = schema.Migration(
        current + 1,
        "test",
        ("CREATE TABLE extra (x TEXT)", "ALTER TABLE nowhere ADD COLUMN y TEXT"),
    )
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    with pytest.raises(SendLogError, match="no such table: nowhere"):
        SendLog(path)
    assert user_version(path) == current
    tables = {name for (name,) in read_rows(path, "SELECT name FROM sqlite_master")}
    assert "extra" not in tables


def test_resume_of_a_version_1_log_sends_only_the_rest(
    project: Path, log_path: Path, smtp_server
) -> None:
    """A half-sent campaign whose log a previous release wrote resumes without resending."""
    server, handler = smtp_server()
    assert send(project, server.port, "--limit", "5").exit_code == 0
    first = {m.rcpt_tos[0] for m in handler.messages}
    assert len(first) == 5
    # Rewrite the log as version 1 (no consent column, user_version 0), rows and all.
    rows = read_rows(log_path, "SELECT * FROM recipient")
    campaigns = read_rows(log_path, "SELECT * FROM campaign")
    added = (
        "consent", "run_id", "throttled", "first_tried_at", "relay",
        "bounce_class", "bounce_status", "bounce_diagnostic",
    )
    keep = [i for i, name in enumerate(_columns(log_path)) if name not in added]
    log_path.unlink()
    build_old_log(log_path, VERSION_1_SQL, 0)
    with sqlite3.connect(log_path) as db:
        db.executemany("INSERT INTO campaign VALUES (?, ?, ?)", campaigns)
        db.executemany(
            f"INSERT INTO recipient VALUES ({', '.join('?' * len(keep))})",
            [[row[i] for i in keep] for row in rows],
        )
    db.close()
    result = send(project, server.port)
    assert result.exit_code == 0, result.output
    received = [m.rcpt_tos[0] for m in handler.messages]
    assert (
        len(received)
        == len(set(received))
        == len(rows)
        - read_rows(log_path, "SELECT COUNT(*) FROM recipient WHERE state = 'skipped'")[0][0]
    )
    assert user_version(log_path) == schema.SCHEMA_VERSION
    sent = read_rows(log_path, "SELECT COUNT(*) FROM recipient WHERE state = 'sent'")[0][0]
    assert sent == len(received)


def test_read_only_open_of_an_old_log_reads_it_without_migrating(
    project: Path, log_path: Path
) -> None:
    """status and report read a version-1 log as it is: rows shown, the file not upgraded."""
    log_path.parent.mkdir(parents=True)
    _v1_log(log_path, 0)
    with sqlite3.connect(log_path) as db:
        db.execute("UPDATE recipient SET campaign = 'sept2018'")
        db.execute("UPDATE campaign SET name = 'sept2018'")
    db.close()
    before = log_path.read_bytes()
    status = cli("status", str(project))
    assert status.exit_code == 0, status.output
    assert "sent" in status.stdout and "pending" in status.stdout
    report = cli("report", str(project), "--format", "csv")
    assert report.exit_code == 0, report.output
    lines = report.stdout.splitlines()
    assert "consent" in lines[0].split(",") and len(lines) == 1 + len(V1_ROWS)
    assert log_path.read_bytes() == before
    assert user_version(log_path) == 0
