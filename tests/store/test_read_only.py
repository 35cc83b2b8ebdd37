"""status and report open the send log read-only: they work without write access, write nothing."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import harkat_mail

from .conftest import assert_one_line_error, cli, send, send_log_of

NOBODY = 65534


def _snapshot(log: Path) -> tuple[bytes, int, list[str]]:
    """The log's bytes and mtime, and what lies beside it."""
    return log.read_bytes(), log.stat().st_mtime_ns, sorted(p.name for p in log.parent.iterdir())


@pytest.fixture
def sent(project: Path, smtp_server) -> Path:
    """The sample campaign after a real send: its YAML."""
    server, _ = smtp_server()
    result = send(project, server.port)
    assert result.exit_code == 0, result.output
    return project


@pytest.fixture
def reader_tree(sent: Path) -> Iterator[Path]:
    """After a real send, a copy of the project in a 0755 tree under /tmp; returns its YAML."""
    root = Path(tempfile.mkdtemp(prefix="harkat-readonly-"))
    try:
        shutil.copytree(sent.parent.parent, root / "p")
        os.chmod(root, 0o755)
        for folder, _, files in os.walk(root):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder, name), 0o644)
        yield root / "p" / "campaigns" / sent.name
    finally:
        shutil.rmtree(root)


# Imports run first (the interpreter and the source may sit where nobody cannot read, as
# under /root); then the process becomes nobody, and every send-log access is nobody's.
_READER = """
import os, sys
import encodings.cp1252, encodings.utf_8_sig  # the member list is decoded for names in reports
from harkat_mail.cli import main
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
main(sys.argv[1:], prog_name="harkat-mail")
""".replace("NOBODY", str(NOBODY))


def _as_reader(*args: str, campaign: Path) -> subprocess.CompletedProcess[str]:
    """Run harkat-mail as a user who may read the project but write nothing in it."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(harkat_mail.__file__).parents[1]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-c", _READER, *args]
    if os.geteuid() == 0:  # root ignores permission bits: the child becomes nobody
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    folder = send_log_of(campaign).parent  # not root: take the write bit away instead
    folder.chmod(0o555)
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)


def test_reader_without_write_access_sees_a_closed_log(reader_tree: Path) -> None:
    """With no -wal/-shm beside the log, status and report work for a read-only user, write nothing."""
    log = send_log_of(reader_tree)
    before = _snapshot(log)
    assert before[2] == [log.name]  # the send closed cleanly: no -wal or -shm
    status = _as_reader("status", str(reader_tree), campaign=reader_tree)
    assert status.returncode == 0, status.stderr
    delivered = (
        sqlite3.connect(f"file:{log}?mode=ro&immutable=1", uri=True)
        .execute("SELECT COUNT(*) FROM recipient WHERE state = 'sent'")
        .fetchone()[0]
    )
    assert f"  sent      {delivered:>7}" in status.stdout.splitlines()
    report = _as_reader("report", str(reader_tree), campaign=reader_tree)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(report.stdout.splitlines()))
    assert sum(r["state"] == "sent" for r in rows) == delivered
    assert _snapshot(log) == before


def test_reader_without_write_access_sees_commits_still_in_the_wal(reader_tree: Path) -> None:
    """While a writer holds -wal/-shm, a read-only user's status and report show its commits."""
    log = send_log_of(reader_tree)
    writer = sqlite3.connect(log)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")  # the change stays in the -wal only
        writer.execute(
            "UPDATE recipient SET state = 'failed', code = 550, reply = '5.1.1 wal-only bounce'"
            " WHERE key = (SELECT MIN(key) FROM recipient WHERE state = 'sent')"
        )
        writer.commit()
        wal = Path(f"{log}-wal")
        assert wal.exists() and Path(f"{log}-shm").exists()
        before = log.read_bytes(), log.stat().st_mtime_ns, wal.read_bytes()
        status = _as_reader("status", str(reader_tree), campaign=reader_tree)
        assert status.returncode == 0, status.stderr
        assert "  failed          1" in status.stdout.splitlines()
        assert "failed 550 5.1.1 wal-only bounce" in status.stdout
        report = _as_reader("report", str(reader_tree), "--format", "json", campaign=reader_tree)
        assert report.returncode == 0, report.stderr
        assert report.stdout.count('"state": "failed"') == 1
        assert (log.read_bytes(), log.stat().st_mtime_ns, wal.read_bytes()) == before
    finally:
        writer.close()


def test_status_and_report_as_root_create_no_wal_and_change_nothing(sent: Path) -> None:
    """Even where it could write, the read-only open leaves the file's bytes and mtime as they were."""
    log = send_log_of(sent)
    before = _snapshot(log)
    assert before[2] == [log.name]
    assert cli("status", str(sent)).exit_code == 0
    for fmt in ("csv", "json"):
        assert cli("report", str(sent), "--format", fmt).exit_code == 0
    assert _snapshot(log) == before


@pytest.mark.parametrize("command", ["status", "report"])
def test_campaign_never_sent_exits_2_and_creates_no_log(project: Path, command: str) -> None:
    """status and report on a campaign with no send log say so in one line, exit 2, create nothing."""
    log = send_log_of(project)
    assert not log.parent.exists()
    result = cli(command, str(project))
    assert_one_line_error(result, str(log), "no send log", "nothing has been sent")
    assert result.stdout == ""
    assert not log.exists() and not log.parent.exists()
