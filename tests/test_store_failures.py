"""A send log that fails mid-run stops the run cleanly: one error line, non-zero, nothing recorded lost."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_concurrency import _start, _states
from .test_crash import _project
from .test_workers import _wait_for

MEMBERS = 1000


def _check_stopped_cleanly(proc: subprocess.Popen[str], store: str, cause: str) -> None:
    _, err = proc.communicate(timeout=60)
    errors = [line for line in err.splitlines() if line.startswith("harkat-mail:")]
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert len(errors) == 1 and store in errors[0] and cause in errors[0], err
    assert "before it stopped, this run delivered" in err, err  # what it did, for the user


def _check_resume(campaign: Path, send_log: str, handler) -> None:
    """A later run finishes the campaign; `sent` means one copy, and nobody got two."""
    resume = _start(campaign, send_log)
    _, err = resume.communicate(timeout=120)
    assert resume.returncode in (0, 1), err
    states = _states(send_log)
    assert len(states) == MEMBERS and set(states.values()) <= {"sent", "unknown"}, err
    for email, state in states.items():
        copies = handler.copies(email)
        assert copies == 1 if state == "sent" else copies in (0, 1), (email, state, copies)


@pytest.mark.slow
def test_a_locked_sqlite_log_stops_the_run_with_one_line(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """Another process holding the write lock past the busy timeout: one line, exit 2, resumable."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=300, count=MEMBERS)
    send_log = str(tmp_path / "outbox" / "locked.sqlite")
    proc = _start(campaign, send_log)
    _wait_for(handler, 100, proc)
    blocker = sqlite3.connect(send_log, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        _check_stopped_cleanly(proc, send_log, "busy")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _check_resume(campaign, send_log, handler)


@contextlib.contextmanager
def _small_tmpfs(size: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="harkat-tmpfs-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """The send log's filesystem fills up mid-run: one line naming it, exit 2, resumable."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=300, count=MEMBERS)
    with _small_tmpfs("8m") as disk:
        send_log = str(disk / "full.sqlite")
        proc = _start(campaign, send_log)
        _wait_for(handler, 100, proc)
        filler = disk / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:  # take every free block
                handle.write(b"\0" * 65536)
                handle.flush()
        _check_stopped_cleanly(proc, send_log, "no room")
        filler.unlink()
        _check_resume(campaign, send_log, handler)


@pytest.mark.slow
def test_postgresql_stopped_mid_run_stops_the_run_with_one_line(
    tmp_path: Path, project: Path, smtp_server, postgres_db: str, pg_server
) -> None:
    """The database goes away mid-run: one line naming it, non-zero; what it recorded stays."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=300, count=MEMBERS)
    proc = _start(campaign, postgres_db)
    _wait_for(handler, 100, proc)
    pg_server.stop()
    try:
        _check_stopped_cleanly(proc, postgres_db.split("@")[-1], "database")
    finally:
        pg_server.start()
    recorded = _states(postgres_db)
    sent = [e for e, s in recorded.items() if s == "sent"]
    assert sent and all(handler.copies(e) == 1 for e in sent)
    _check_resume(campaign, postgres_db, handler)


@pytest.mark.slow
def test_a_sqlite_log_deleted_mid_run_stops_the_run(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """The log file removed under a running send: it stops with one line instead of going on."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=200, count=MEMBERS)
    send_log = tmp_path / "outbox" / "doomed.sqlite"
    proc = _start(campaign, str(send_log))
    _wait_for(handler, 100, proc)
    for path in send_log.parent.glob("doomed.sqlite*"):
        path.unlink()
    _check_stopped_cleanly(proc, str(send_log), "removed or replaced")
    assert len(handler.messages) < MEMBERS


@pytest.mark.slow
def test_a_budget_that_cannot_be_read_stops_the_run_instead_of_hanging(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """The shared rate's store locked past the busy timeout: one line and an exit, no hang."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=5, count=100)
    send_log = str(tmp_path / "outbox" / "budget.sqlite")
    proc = _start(campaign, send_log)
    _wait_for(handler, 5, proc)
    blocker = sqlite3.connect(send_log, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        _check_stopped_cleanly(proc, send_log, "busy")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
