"""Several `harkat-mail send` processes on one campaign: each member gets exactly one copy.

Every scenario runs on both stores: a SQLite file shared by processes on one machine, and a
PostgreSQL database (the tests' own server) as several machines would share it.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_crash import _project

MEMBERS = 1500


@pytest.fixture(params=["sqlite", "postgres"])
def send_log(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The send log the runs share: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "outbox" / "shared.sendlog.sqlite")
    return str(request.getfixturevalue("postgres_db"))


def _start(campaign: Path, send_log: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harkat_mail", "send", str(campaign), "--yes",
         "--send-log", send_log, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _states(send_log: str) -> dict[str, str]:
    """email -> state, read from the store with its own client library."""
    query = "SELECT email, state FROM recipient WHERE state != 'skipped'"
    if send_log.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(send_log) as db:
            return dict(db.execute(query).fetchall())
    db = sqlite3.connect(send_log)
    try:
        return dict(db.execute(query).fetchall())
    finally:
        db.close()


def _delivered(out: str) -> int:
    line = next(line for line in out.splitlines() if ": delivered " in line)
    return int(line.split(": delivered ")[1].split(",")[0])


@pytest.mark.slow
def test_three_concurrent_sends_deliver_each_member_once(
    tmp_path: Path, project: Path, smtp_server, send_log: str
) -> None:
    """Three runs started together: every member exactly one copy; each run says what it sent."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=100000, count=MEMBERS)
    runs = [_start(campaign, send_log) for _ in range(3)]
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    copies = [handler.copies(f"member{i}@example.org") for i in range(MEMBERS)]
    assert copies == [1] * MEMBERS
    assert sum(_delivered(out) for out, _ in outputs) == MEMBERS
    assert set(_states(send_log).values()) == {"sent"}


@pytest.mark.slow
def test_sigkill_one_of_three_then_resume_doubles_and_loses_nobody(
    tmp_path: Path, project: Path, smtp_server, send_log: str
) -> None:
    """One of three runs killed mid-send: the others finish, a resume completes; nobody twice."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=300, count=MEMBERS)
    runs = [_start(campaign, send_log) for _ in range(3)]
    deadline = time.monotonic() + 60
    while len(handler.messages) < 200:
        assert time.monotonic() < deadline, "the senders made no progress"
        time.sleep(0.01)
    runs[0].send_signal(signal.SIGKILL)
    for run in runs:
        run.communicate(timeout=240)
    resume = _start(campaign, send_log)
    _, err = resume.communicate(timeout=240)
    assert resume.returncode in (0, 1), err
    states = _states(send_log)
    assert len(states) == MEMBERS and set(states.values()) <= {"sent", "unknown"}
    unknown = [e for e, s in states.items() if s == "unknown"]
    assert len(unknown) <= 4 * 4  # at most the killed run's messages in flight
    for email, state in states.items():
        copies = handler.copies(email)
        assert copies == 1 if state == "sent" else copies in (0, 1), (email, state, copies)


@pytest.mark.slow
def test_two_runs_share_the_relay_rate(
    tmp_path: Path, project: Path, smtp_server, send_log: str
) -> None:
    """Two runs at rate 60 send 60 messages/s together (within 5%) while both are running."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=60, count=MEMBERS)
    runs = [_start(campaign, send_log) for _ in range(2)]
    time.sleep(3)  # both started and sending
    start_count, start = len(handler.messages), time.monotonic()
    time.sleep(10)
    rate = (len(handler.messages) - start_count) / (time.monotonic() - start)
    for run in runs:
        run.send_signal(signal.SIGINT)
    for run in runs:
        run.communicate(timeout=60)
    assert 60 * 0.95 <= rate <= 60 * 1.05, rate


@pytest.mark.slow
def test_status_shows_the_runs_sending_now_and_an_expired_lease(
    tmp_path: Path, project: Path, smtp_server, send_log: str
) -> None:
    """status lists a live run (host, pid, rows held); once killed, its lease shows as expired."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=50, count=300)
    campaign.write_text(campaign.read_text(encoding="utf-8") + "lease: 1\n", encoding="utf-8")
    proc = _start(campaign, send_log)
    deadline = time.monotonic() + 60
    while len(handler.messages) < 20:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)

    def status() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "harkat_mail", "status", str(campaign), "--send-log", send_log],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    live = status()
    assert f"pid {proc.pid}" in live and "holds " in live and "sending" in live
    # ISO 8601 with the offset, in the campaign's time zone (the sample's is America/Toronto)
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[45]:00: holds ", live), live
    proc.kill()
    proc.communicate(timeout=30)
    time.sleep(1.5)
    assert "lease expired" in status()
    # The next run takes the killed run's rows over; every member ends with one copy at most.
    resume = _start(campaign, send_log)
    resume.communicate(timeout=120)
    states = _states(send_log)
    assert set(states.values()) <= {"sent", "unknown"}
    assert all(handler.copies(e) <= 1 for e in states)


def test_a_send_log_url_in_the_yaml_is_where_send_and_status_go(
    tmp_path: Path, project: Path, smtp_server, postgres_db: str
) -> None:
    """send_log: postgresql://... in the campaign: send records there and status reads it."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=100000, count=30)
    text = re.sub(r"(?m)^send_log:.*\n", "", campaign.read_text(encoding="utf-8"))
    campaign.write_text(text + f"send_log: {postgres_db}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "harkat_mail", "send", str(campaign), "--yes"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(handler.messages) == 30 and set(_states(postgres_db).values()) == {"sent"}
    assert not (tmp_path / "outbox" / "sept2018.sendlog.sqlite").exists()
    status = subprocess.run(
        [sys.executable, "-m", "harkat_mail", "status", str(campaign)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert status.returncode == 0 and "sent" in status.stdout and "30" in status.stdout
    report = subprocess.run(
        [sys.executable, "-m", "harkat_mail", "report", str(campaign), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    rows = [r for r in json.loads(report.stdout) if r["state"] != "skipped"]
    assert report.returncode == 0 and len(rows) == 30
    assert all(r["state"] == "sent" and r["message_id"].startswith("<") for r in rows)


@pytest.mark.slow
def test_a_run_stalled_past_its_lease_never_sends_what_another_run_took(
    tmp_path: Path, project: Path, smtp_server, send_log: str
) -> None:
    """SIGSTOP past the lease, another run takes over with --retry-unknown, SIGCONT: one copy."""
    server, handler = smtp_server(slowpoke=("data-cmd", "slow:1.5", 1))
    campaign = _project(tmp_path, project, server.port, rate=100000, count=20)
    text = campaign.read_text(encoding="utf-8").replace("connections: 4", "connections: 1")
    campaign.write_text(text + "lease: 2\n", encoding="utf-8")
    # member10 is the slow one: rename it so the rule above matches only it.
    members = tmp_path / "lists" / "big.csv"
    members.write_text(
        members.read_text(encoding="utf-8").replace("member10@", "slowpoke10@"), encoding="utf-8"
    )
    stalled = _start(campaign, send_log)
    deadline = time.monotonic() + 30
    while handler.rcpt_calls["slowpoke10@example.org"] == 0:
        assert stalled.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    stalled.send_signal(signal.SIGSTOP)  # waiting for the 354: the row is `sending`
    time.sleep(3.5)  # past the 2 s lease
    other = _start(campaign, send_log, "--retry-unknown")
    other_out, other_err = other.communicate(timeout=60)
    stalled.send_signal(signal.SIGCONT)
    _, err = stalled.communicate(timeout=60)
    # The stalled run wakes up holding a 354 for a member another run may now hold: it must
    # cut the session before the dot, never deliver a second copy.
    assert handler.copies("slowpoke10@example.org") <= 1
    if ": delivered " in other_out and _delivered(other_out) > 0:  # the other run took over
        assert stalled.returncode == 2, (err, other_out)
        assert "lease" in err or "took this run's rows over" in err, err
    else:  # SQLite: stopped inside a write, the stalled run kept the lock; nobody took over
        assert "busy" in other_err, (other_out, other_err)
