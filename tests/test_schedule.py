"""Schedules: ``send --at`` and the sending window, over real SMTP.

Time itself cannot be a real server: the library takes a ``Clock``, and these tests pass one
that advances instantly. One test waits for real, a few seconds, through the CLI.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import harkat_mail
from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.errors import ConfigError
from harkat_mail.models import SmtpConfig
from harkat_mail.run import parse_at

from .campaign.helpers import edit

TORONTO = ZoneInfo("America/Toronto")
WINDOW = 'window: {days: mon-fri, hours: "07:00-20:00"}'


class FakeClock:
    """Advances only when slept on (instantly), or by ``step`` each time it is read."""

    def __init__(self, start: datetime, step: timedelta = timedelta(0)) -> None:
        self.moment = start
        self.step = step
        self.on_nap: Callable[[float], None] = lambda _: None

    def now(self) -> datetime:
        current = self.moment
        self.moment += self.step
        return current

    async def sleep(self, seconds: float) -> None:
        self.on_nap(seconds)
        self.moment += timedelta(seconds=seconds)
        await asyncio.sleep(0)


def _relay(port: int) -> SmtpConfig:
    return SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none", connections=1)


def _windowed(project: Path) -> Path:
    edit(project, '# window: {days: mon-fri, hours: "07:00-20:00"}', WINDOW)
    return project


def _deliver(project: Path, port: int, clock: FakeClock, **kwargs: object) -> list[str]:
    lines: list[str] = []
    prepared = harkat_mail.prepare(load_campaign(project))
    summary = harkat_mail.send(
        prepared, _relay(port), say=lines.append, clock=clock, **kwargs  # type: ignore[arg-type]
    )
    assert summary.failed == 0 and summary.deferred == 0
    return lines


def test_a_long_run_pauses_outside_the_window_and_resumes_in_it(project: Path, smtp_server) -> None:
    """Friday 19:55, a minute per message: some go, the run pauses until Monday 07:00, then the rest."""
    server, handler = smtp_server()
    clock = FakeClock(datetime(2026, 11, 27, 19, 55, tzinfo=TORONTO), step=timedelta(minutes=1))
    during_pause: list[int] = []
    clock.on_nap = lambda _: during_pause.append(len(handler.messages))
    lines = _deliver(_windowed(project), server.port, clock)
    assert "outside the sending window (mon-fri 07:00-20:00): pausing until Mon 2026-11-30 07:00 (America/Toronto)" in lines
    assert "inside the sending window (mon-fri 07:00-20:00) again: resuming" in lines
    assert len(set(during_pause)) == 1  # nothing was delivered while paused
    before = during_pause[0]
    received = [m.rcpt_tos[0] for m in handler.messages]
    assert 0 < before < len(received) and len(set(received)) == len(received)
    assert clock.moment >= datetime(2026, 11, 30, 7, 0, tzinfo=TORONTO)


def test_a_run_started_on_a_weekend_waits_for_monday(project: Path, smtp_server) -> None:
    """Started on Saturday: nothing goes out until the window opens on Monday, then everyone."""
    server, handler = smtp_server()
    clock = FakeClock(datetime(2026, 11, 28, 10, 0, tzinfo=TORONTO))
    during_pause: list[int] = []
    clock.on_nap = lambda _: during_pause.append(len(handler.messages))
    lines = _deliver(_windowed(project), server.port, clock)
    assert lines[0] == (
        "outside the sending window (mon-fri 07:00-20:00): "
        "pausing until Mon 2026-11-30 07:00 (America/Toronto)"
    )
    assert set(during_pause) == {0} and handler.messages
    assert datetime(2026, 11, 30, 7, 0, tzinfo=TORONTO) <= clock.moment < datetime(
        2026, 11, 30, 7, 5, tzinfo=TORONTO
    )


def test_at_waits_on_the_clock_then_sends(project: Path, smtp_server) -> None:
    """--at in the library: nothing is delivered before the time, everyone after it."""
    server, handler = smtp_server()
    clock = FakeClock(datetime(2026, 11, 30, 22, 0, tzinfo=TORONTO))
    campaign = load_campaign(project)
    at = parse_at("2026-12-01 07:00", campaign, clock.now())
    assert at == datetime(2026, 12, 1, 7, 0, tzinfo=TORONTO)  # read in the campaign's zone
    during_wait: list[int] = []
    clock.on_nap = lambda _: during_wait.append(len(handler.messages))
    _deliver(project, server.port, clock, at=at)
    assert set(during_wait) == {0} and len(during_wait) > 100
    assert clock.moment >= at and handler.messages


def test_at_reads_seconds_offsets_and_refuses_the_past(project: Path) -> None:
    """ISO 8601 with or without seconds or offset; a past time is refused unless within a minute."""
    campaign = load_campaign(project)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=TORONTO)
    assert parse_at("2026-12-01T07:00:30", campaign, now).second == 30
    assert parse_at("2026-12-01 07:00+00:00", campaign, now).utcoffset() == timedelta(0)
    assert parse_at("2026-11-30 11:59:30", campaign, now) < now  # within a minute: now
    with pytest.raises(ConfigError, match=r"that time has passed \(it is 2026-11-30 12:00 in America/Toronto\)"):
        parse_at("2026-11-30 11:00", campaign, now)
    with pytest.raises(ConfigError, match=r"expected a date and time \(ISO 8601"):
        parse_at("tomorrow 7am", campaign, now)


def _now_in_toronto(delta: float) -> str:
    return (datetime.now(TORONTO) + timedelta(seconds=delta)).strftime("%Y-%m-%d %H:%M:%S")


def test_send_at_a_few_seconds_ahead_waits_for_real(project: Path, smtp_server) -> None:
    """The CLI counts down (plain lines off a terminal) and sends once the time has come."""
    server, handler = smtp_server()
    at = _now_in_toronto(4)
    started = time.monotonic()
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes", "--at", at]
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 2.5  # generous: the clock started before the CLI
    assert f"waiting until {at} (America/Toronto): " in result.output
    assert handler.messages and "delivered" in result.output


def test_bad_at_values_are_one_line_and_exit_2(project: Path, smtp_server) -> None:
    """A past time or an unreadable one: one line, exit 2, nothing sent."""
    server, handler = smtp_server()
    base = ["send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes"]
    for value, message in (
        (_now_in_toronto(-3600), "that time has passed"),
        ("1 December", "expected a date and time"),
    ):
        result = CliRunner().invoke(main, [*base, "--at", value])
        assert result.exit_code == 2 and message in result.output
        assert "Traceback" not in result.output
    result = CliRunner().invoke(main, [*base, "--at", _now_in_toronto(-20)])
    assert result.exit_code == 0 and handler.messages  # within a minute: sent now


def test_ctrl_c_while_waiting_sends_nothing(project: Path, smtp_server) -> None:
    """Ctrl-C during the countdown: exit 130, "nothing was sent", the relay saw nothing."""
    server, handler = smtp_server()
    process = subprocess.Popen(
        [sys.executable, "-m", "harkat_mail", "send", str(project), "--smtp",
         f"smtp://127.0.0.1:{server.port}", "--yes", "--at", _now_in_toronto(600)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("waiting until"):
            break
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted while waiting for --at: nothing was sent" in out
    assert handler.messages == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('window: {days: mon-fry, hours: "07:00-20:00"}', "window.days: cannot read 'mon-fry'"),
        ('window: {days: mon-fri, hours: "20:00-07:00"}', "window.hours: cannot read '20:00-07:00'"),
        ("window: {hours: 7-20}", "e.g. hours: \"07:00-20:00\""),
        ("window: {}", "window: the map is empty"),
        ("timezone: Mars/Olympus", "timezone: "),  # and the value, e.g. 'Mars/Olympus'
        ("timezone: Europe/Pariss", "Europe/Pariss"),
    ],
)
def test_bad_windows_and_zones_are_named(project: Path, line: str, message: str) -> None:
    """An unreadable window or zone: the key, the value, and a valid example."""
    text = project.read_text(encoding="utf-8").replace("timezone: America/Toronto\n", "")
    project.write_text(text + line + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(project)])
    assert result.exit_code == 2 and message in result.output and "sept2018.yaml:" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_window_days_lists_and_whole_days(project: Path) -> None:
    """days: mon,wed,fri and hours up to 24:00 are read as written."""
    edit(project, '# window: {days: mon-fri, hours: "07:00-20:00"}',
         'window: {days: "mon,wed,fri", hours: "18:00-24:00"}')
    window = load_campaign(project).window
    assert window is not None and window.label == "mon,wed,fri 18:00-24:00"
    assert window.contains(datetime(2026, 11, 27, 23, 59))  # a Friday
    assert not window.contains(datetime(2026, 11, 26, 23, 0))  # a Thursday
    assert not window.contains(datetime(2026, 11, 27, 17, 59))


def test_ctrl_c_while_paused_outside_the_window_sends_nothing(project: Path, smtp_server) -> None:
    """A run paused by its window stops on Ctrl-C: exit 130, nothing delivered, all resumable."""
    tomorrow = (datetime.now(TORONTO) + timedelta(days=1)).strftime("%a").lower()
    edit(project, '# window: {days: mon-fri, hours: "07:00-20:00"}', f"window: {{days: {tomorrow}}}")
    server, handler = smtp_server()
    command = [sys.executable, "-m", "harkat_mail", "send", str(project), "--smtp",
               f"smtp://127.0.0.1:{server.port}", "--yes"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("outside the sending window"):
            break
    assert f"outside the sending window ({tomorrow}): pausing until " in line
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert handler.messages == []
    status = CliRunner().invoke(main, ["status", str(project)])
    assert re.search(r"^  pending +\d+$", status.output, re.M)
    assert not re.search(r"^  (sent|sending|unknown) ", status.output, re.M)


def test_a_pool_of_relays_pauses_once_and_resumes_together(project: Path, smtp_server) -> None:
    """Two relays share one window: one pause line, nothing delivered before Monday, all after."""
    first, first_handler = smtp_server()
    second, second_handler = smtp_server()
    clock = FakeClock(datetime(2026, 11, 28, 10, 0, tzinfo=TORONTO))
    during_pause: list[int] = []
    clock.on_nap = lambda _: during_pause.append(
        len(first_handler.messages) + len(second_handler.messages)
    )
    lines: list[str] = []
    prepared = harkat_mail.prepare(load_campaign(_windowed(project)))
    summary = harkat_mail.send(
        prepared, [_relay(first.port), _relay(second.port)], say=lines.append, clock=clock
    )
    assert sum("outside the sending window" in line for line in lines) == 1
    assert set(during_pause) == {0}
    delivered = len(first_handler.messages) + len(second_handler.messages)
    assert delivered == summary.delivered > 0
    assert first_handler.messages and second_handler.messages
