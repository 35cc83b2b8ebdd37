"""Crash and resume: SIGKILL at random moments and Ctrl-C never lose or double a message."""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

MEMBERS = 1000


def _project(tmp_path: Path, project: Path, port: int, rate: int, count: int = MEMBERS) -> Path:
    """The sample campaign pointed at a ``count``-member list and a test relay on ``port``."""
    members = tmp_path / "lists" / "big.csv"
    with members.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["email", "first_name", "last_name", "language", "status", "local", "consent"]
        )
        for i in range(count):
            writer.writerow(
                [
                    f"member{i}@example.org",
                    f"Zoë{i}",
                    "Côté",
                    "fr" if i % 3 else "en",
                    "active",
                    str(100 + i % 50),
                    "implied",
                ]
            )
    text = project.read_text(encoding="utf-8")
    text = text.replace("path: ../lists/members.csv", "path: ../lists/big.csv")
    text = text.replace(
        "smtp: local",
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  tls: none\n  connections: 4\n"
        f"  rate: {rate}\nretry:\n  attempts: 3\n  delays: [0.2]",
    )
    project.write_text(text, encoding="utf-8")
    return project


def _start(campaign: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harkat_mail", "send", str(campaign), "--yes", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _states(campaign: Path) -> dict[str, str]:
    log = campaign.parent.parent / "outbox" / "sept2018.sendlog.sqlite"
    db = sqlite3.connect(log)
    try:
        return dict(db.execute("SELECT email, state FROM recipient WHERE state != 'skipped'"))
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_moments_then_resume(
    tmp_path: Path, project: Path, smtp_server, seed: int
) -> None:
    """After three SIGKILLs and resumes: sent means one copy, nobody lost, unknowns bounded."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=300)
    rnd = random.Random(seed)
    for _ in range(3):
        target = len(handler.messages) + rnd.randint(30, 250)
        proc = _start(campaign)
        deadline = time.monotonic() + 60
        while proc.poll() is None and len(handler.messages) < target:
            assert time.monotonic() < deadline, "the sender made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    final = _start(campaign)
    out, err = final.communicate(timeout=120)
    assert final.returncode in (0, 1), err
    states = _states(campaign)
    assert len(states) == MEMBERS
    assert set(states.values()) <= {"sent", "unknown"}, err
    for email, state in states.items():
        copies = handler.copies(email)
        assert copies == 1 if state == "sent" else copies in (0, 1), (email, state, copies)
    unknown = [e for e, s in states.items() if s == "unknown"]
    assert len(unknown) <= 3 * 4  # at most the messages in flight at each kill
    # Asking for them sends each unknown recipient once more, and only them.
    again = _start(campaign, "--retry-unknown")
    again.communicate(timeout=120)
    assert again.returncode == 0
    assert set(_states(campaign).values()) == {"sent"}
    doubled = [e for e in states if handler.copies(e) == 2]
    assert set(doubled) <= set(unknown) and all(handler.copies(e) >= 1 for e in states)


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_and_resume_completes(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """SIGINT: exit 130, no row left `sending`, and the resume sends everyone else once."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=200)
    proc = _start(campaign)
    deadline = time.monotonic() + 60
    while len(handler.messages) < 100:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    states = _states(campaign)
    assert "sending" not in states.values() and "unknown" not in states.values()
    assert 100 <= sum(s == "sent" for s in states.values()) < MEMBERS
    resume = _start(campaign)
    resume.communicate(timeout=120)
    assert resume.returncode == 0
    assert set(_states(campaign).values()) == {"sent"}
    assert all(handler.copies(f"member{i}@example.org") == 1 for i in range(MEMBERS))


@pytest.mark.slow
def test_changed_template_is_not_resumed_without_force(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """A campaign whose template changed after its first run refuses to resume, naming it."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=1000)
    first = _start(campaign, "--limit", "5")
    first.communicate(timeout=60)
    en = tmp_path / "templates" / "harkat-appeal" / "en.html"
    en.write_text(en.read_text(encoding="utf-8").replace("Dear", "Hello"), encoding="utf-8")
    refused = _start(campaign)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "different template" in err and "--force" in err
    assert len(handler.messages) == 5
    forced = _start(campaign, "--force", "--limit", "5")
    forced.communicate(timeout=60)
    assert forced.returncode == 0 and len(handler.messages) == 10
    assert os.path.exists(tmp_path / "outbox" / "sept2018.sendlog.sqlite")
