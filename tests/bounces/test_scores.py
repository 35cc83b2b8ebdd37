"""Soft scores are the project's: they add up across campaigns, each with its own SQLite log."""

from __future__ import annotations

import asyncio
import mailbox
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from click.testing import CliRunner

from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.lists.suppression import read_suppressions
from harkat_mail.run.bounces import process_bounces

from . import dsn

BOUNCES = "bounces@cupw.example.org"
DAY0 = date(2026, 3, 2)


def _campaigns(project: Path, names: list[str]) -> list[Path]:
    """Copies of the sample campaign, each with its own send log and outbox, all sent."""
    text = project.read_text(encoding="utf-8").replace(
        "smtp: local\n", f"smtp: local\nbounces: {{address: {BOUNCES}, soft_threshold: 3}}\n"
    )
    made = []
    for name in names:
        path = project.with_name(f"{name}.yaml")
        path.write_text(text.replace("sept2018", name), encoding="utf-8")
        result = CliRunner().invoke(main, ["send", str(path), "--yes"])
        assert result.exit_code == 0, result.output
        made.append(path)
    assert len({load_campaign(p).send_log for p in made}) == len(names)  # one log each
    return made


def _members(yaml: Path) -> list[str]:
    with sqlite3.connect(load_campaign(yaml).send_log) as db:
        rows = db.execute("SELECT email FROM recipient WHERE state = 'sent' ORDER BY key")
        return [email for (email,) in rows]


def _process(yaml: Path, folder: Path, messages: list[bytes], day: date) -> int:
    """Put ``messages`` in a fresh Maildir and process it for ``yaml``'s campaign on ``day``."""
    box = mailbox.Maildir(folder)
    for data in messages:
        box.add(data)
    summary = asyncio.run(process_bounces(load_campaign(yaml), str(folder), today=day))
    assert summary.moved == len(messages), summary.left
    return summary.suppressed


def _full(address: str) -> bytes:
    return dsn.dsn(BOUNCES, address, "4.2.2", "452 4.2.2 Mailbox full; over quota", action="failed")


def _suppressed(project: Path) -> set[str]:
    path = project.parent.parent / "suppression.txt"
    return read_suppressions([path])[0] if path.exists() else set()


def test_a_mailbox_full_in_three_campaigns_on_three_days_is_suppressed(project: Path, tmp_path: Path) -> None:
    """Three appeals, three SQLite logs, soft bounces on three days: suppressed after the third."""
    first, second, third = _campaigns(project, ["appeal1", "appeal2", "appeal3"])
    member = _members(first)[0]
    same = _full(member)  # one bounce, read for two campaigns on two days: it counts once
    assert _process(first, tmp_path / "m1", [same], DAY0) == 0
    assert _process(second, tmp_path / "m2", [same], DAY0 + timedelta(days=1)) == 0
    assert _process(second, tmp_path / "m3", [_full(member)], DAY0 + timedelta(days=1)) == 0
    assert member.lower() not in _suppressed(project)
    assert _process(third, tmp_path / "m4", [_full(member)], DAY0 + timedelta(days=2)) == 1
    assert member.lower() in _suppressed(project)
    line = next(x for x in (project.parent.parent / "suppression.txt").read_text().splitlines()
                if x.startswith(member.lower()))
    assert "bounced soft on 3 days" in line


def test_thirty_one_days_of_silence_forget_a_soft_score(project: Path, tmp_path: Path) -> None:
    """Two soft days, then 31 days without one: the third bounce starts again from one."""
    first, second, third = _campaigns(project, ["appeal1", "appeal2", "appeal3"])
    member = _members(first)[1]
    _process(first, tmp_path / "m1", [_full(member)], DAY0)
    _process(second, tmp_path / "m2", [_full(member)], DAY0 + timedelta(days=1))
    assert _process(third, tmp_path / "m3", [_full(member)], DAY0 + timedelta(days=32)) == 0
    assert member.lower() not in _suppressed(project)


def test_a_run_that_cannot_write_the_suppression_converges_on_rerun(project: Path, tmp_path: Path) -> None:
    """Suppression file unwritable: one line, exit 2, mail stays; the rerun suppresses the hard bounce."""
    (yaml,) = _campaigns(project, ["appeal1"])
    member = _members(yaml)[2]
    box = mailbox.Maildir(tmp_path / "box")
    box.add(dsn.dsn(BOUNCES, member, "5.1.1", "550 5.1.1 User unknown"))
    blocker = project.parent.parent / "suppression.txt"
    blocker.mkdir()  # a folder where the file should be: the write fails after the verdicts
    result = CliRunner().invoke(main, ["bounces", "process", str(yaml), "--from", str(tmp_path / "box")])
    assert result.exit_code == 2 and "suppression.txt" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and len(box) == 1
    blocker.rmdir()
    result = CliRunner().invoke(main, ["bounces", "process", str(yaml), "--from", str(tmp_path / "box")])
    assert result.exit_code == 0 and "1 addresses suppressed; 1 moved" in result.output, result.output
    assert member.lower() in _suppressed(project) and len(mailbox.Maildir(tmp_path / "box")) == 0
