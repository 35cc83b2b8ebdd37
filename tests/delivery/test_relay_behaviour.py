"""Relays that behave like real ones (greylisting, SES-like throttling, session limits, outages)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from harkat_mail.delivery import DeliveryHooks, deliver
from harkat_mail.errors import RelayUnavailable
from harkat_mail.models import Outcome, OutgoingMessage, RetryPolicy, SmtpConfig

from ..conftest import REPO
from ..store.conftest import cli, send
from .test_scheduler import _deliver, _messages

GREYLISTED = (
    "450 4.2.0 <{}>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/example.org.html"
)
QUICK = RetryPolicy(attempts=3, delays=(0.2,), throttle_pause=0.05)


def test_greylisting_defers_only_the_greylisted_and_slows_nobody(smtp_server) -> None:
    """30% greylisted once: each retried after its delay, all delivered once, no slow-down."""
    names = [f"m{i}" for i in range(60)]
    grey = names[::3]
    server, handler = smtp_server(
        **{f"{n}@": ("rcpt", GREYLISTED.format(f"{n}@example.org"), 1) for n in grey}
    )
    out = _deliver(server.port, names, connections=4, policy=QUICK)
    assert all(out.history(n) == [Outcome.DEFERRED, Outcome.SENT] for n in grey)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    assert not any("throttl" in notice for notice in out.notices), out.notices


def test_mailbox_full_members_wait_without_holding_the_line(smtp_server) -> None:
    """Deferred members waiting for their retry hold no slot: everyone behind them goes first."""
    full = [f"full{i}" for i in range(8)]
    fine = [f"fine{i}" for i in range(40)]
    server, handler = smtp_server(full=("rcpt", "452 4.2.2 Mailbox full"))
    policy = RetryPolicy(attempts=2, delays=(1.5,))
    out = _deliver(server.port, full + fine, connections=1, policy=policy)
    log = handler.rcpt_log
    second_try = min(i for i, a in enumerate(log) if log[:i].count(a) == 1 and a.startswith("full"))
    assert {a for a in log[:second_try]} >= {f"{n}@example.org" for n in fine}
    assert all(out.final()[n] == (Outcome.FAILED, 452) for n in full)
    assert "gave up after 2 attempts" in [r.reply for r in out.results if r.key == "full0"][-1]
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in fine)
    assert not any("throttl" in notice for notice in out.notices)


def test_ses_like_throttling_is_retried_and_converges(smtp_server) -> None:
    """Past 25 messages/s the relay answers 454: the run slows, says so, delivers all once."""
    server, handler = smtp_server()
    handler.max_rate = 25
    names = [f"m{i}" for i in range(150)]
    out = _deliver(server.port, names, connections=4, policy=QUICK)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    assert any("slowing down" in notice for notice in out.notices)
    throttled = handler.mail_calls - len(names)
    assert 0 < throttled < len(names) // 2  # it settles under the limit, not on it


def test_throttling_has_its_own_bounded_budget(smtp_server) -> None:
    """A member throttled every time is failed after retry.throttle_attempts, not retried forever."""
    server, handler = smtp_server(stuck=("rcpt", "454 4.7.0 Throttling failure: rate exceeded"))
    policy = RetryPolicy(attempts=1, delays=(0.1,), throttle_pause=0.02, throttle_attempts=3)
    out = _deliver(server.port, ["stuck", "a", "b"], connections=1, policy=policy)
    assert out.history("stuck") == [Outcome.DEFERRED, Outcome.DEFERRED, Outcome.FAILED]
    assert "gave up after 3 throttling replies" in out.results[-1].reply or any(
        "gave up after 3 throttling replies" in r.reply for r in out.results
    )
    assert handler.rcpt_calls["stuck@example.org"] == 3
    assert out.final()["a"] == out.final()["b"] == (Outcome.SENT, 250)


def test_max_age_ends_a_deferral(smtp_server) -> None:
    """A member deferred on every try is failed once retry.max_age has passed since its first."""
    server, _ = smtp_server(grey=("rcpt", GREYLISTED.format("grey@example.org")))
    policy = RetryPolicy(attempts=50, delays=(0.2,), max_age=0.5)
    started = time.monotonic()
    out = _deliver(server.port, ["grey"], connections=1, policy=policy)
    assert out.final()["grey"] == (Outcome.FAILED, 450)
    assert "still deferred after" in out.results[-1].reply
    assert time.monotonic() - started < 10


def test_close_right_after_354_is_deferred_not_unknown() -> None:
    """A relay hanging up after 354, before any data: deferred and retried, never unknown."""
    names = [f"m{i}" for i in range(20)]
    rules = {f"{n}@": ("data-cmd", "354-drop", 1) for n in names}
    # The relay runs in its own process, so its close follows the 354 as a real relay's does.
    relay = subprocess.Popen(
        [sys.executable, "-m", "tests.delivery.relay_process", json.dumps(rules)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])},
        text=True,
    )
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        out = _deliver(port, names, connections=2, policy=QUICK)
    finally:
        delivered, _ = relay.communicate("", timeout=30)
    assert all(out.history(n) == [Outcome.DEFERRED, Outcome.SENT] for n in names), out.results
    assert sorted(json.loads(delivered)) == sorted(f"{n}@example.org" for n in names)


def test_close_just_after_354_is_deferred_once_the_relay_has_done_it() -> None:
    """A relay that flushes its 354 then closes: at most one member per session is unknown
    (the close may reach us after the dot); every other is deferred, retried, delivered once."""
    names = [f"m{i}" for i in range(20)]
    rules = {f"{n}@": ("data-cmd", "354-close", 1) for n in names}
    relay = subprocess.Popen(
        [sys.executable, "-m", "tests.delivery.relay_process", json.dumps(rules)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])},
        text=True,
    )
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        out = _deliver(port, names, connections=2, policy=QUICK)
    finally:
        delivered, _ = relay.communicate("", timeout=30)
    unknown = [n for n in names if out.history(n) == [Outcome.UNKNOWN]]
    assert len(unknown) <= 2, out.results
    rest = [n for n in names if n not in unknown]
    assert all(out.history(n) == [Outcome.DEFERRED, Outcome.SENT] for n in rest), out.results
    assert sorted(json.loads(delivered)) == sorted(f"{n}@example.org" for n in rest)


def test_a_session_limit_below_connections_is_learned(smtp_server) -> None:
    """The relay allows 2 sessions, the campaign asks for 4: it carries on with 2, saying so once."""
    server, handler = smtp_server()
    handler.max_sessions = 2
    names = [f"m{i}" for i in range(40)]
    out = _deliver(server.port, names, connections=4, policy=QUICK)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    assert len([n for n in out.notices if "refused another session" in n]) == 1
    assert out.stopped == ""


def test_a_refused_reconnect_after_deliveries_is_tried_again(smtp_server) -> None:
    """The relay closes a session, then turns the next one away once: the run goes on."""
    server, handler = smtp_server(closing=("rcpt", "421 4.3.2 closing this session", 1))
    handler.refuse_reconnects = 1
    names = ["a", "closing", "b", "c"]
    out = _deliver(server.port, names, connections=1, policy=QUICK)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    assert handler.connections == 3  # the first, the one turned away, the one that worked


def test_read_timeouts_trip_the_breaker(smtp_server) -> None:
    """20 members whose RCPT never gets an answer, though sessions open: the breaker pauses,
    probes, tries once more each time, then stops (exit 3) before waiting out every member."""
    names = [f"m{i}" for i in range(20)]
    server, handler = smtp_server(m=("rcpt", "slow:30"))
    started = time.monotonic()
    with pytest.raises(RelayUnavailable, match="stopped answering: 5 tries in a row got no reply"):
        _deliver(server.port, names, connections=2, timeout=1, policy=QUICK)
    assert time.monotonic() - started < 25  # 20 tries of 1 s, 2 at a time, waited out: 10 s+
    assert sum(handler.rcpt_calls.values()) <= 12


def test_a_relay_that_goes_quiet_then_recovers_is_paused_for(smtp_server) -> None:
    """The relay stops answering for 5 s after 10 messages: the run pauses, says so, probes,
    resumes, and delivers everyone once."""
    server, handler = smtp_server()
    handler.silence = (10, 5.0)
    names = [f"m{i}" for i in range(40)]
    policy = RetryPolicy(attempts=5, delays=(0.5,))
    out = _deliver(server.port, names, connections=2, timeout=1, policy=policy)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names), out.results
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    relay = f"the relay at 127.0.0.1:{server.port}"
    assert f"{relay} timed out 5 times in a row: pausing 1 s" in out.notices, out.notices
    assert f"{relay} answers again: resuming" in out.notices
    assert out.stopped == ""


def test_a_relay_that_stays_quiet_exits_3_with_members_pending(project: Path, smtp_server) -> None:
    """Silent for good after 5 messages: pause, 3 failed probes, exit 3 in bounded time; the
    members never tried stay pending with no attempt spent."""
    server, handler = smtp_server()
    handler.silence = (5, float("inf"))
    text = project.read_text(encoding="utf-8").replace(
        "smtp: local",
        f"smtp: {{host: 127.0.0.1, port: {server.port}, tls: none, timeout: 1, connections: 2}}",
    )
    project.write_text(text, encoding="utf-8")
    started = time.monotonic()
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 3, result.output
    assert time.monotonic() - started < 40
    relay = f"the relay at 127.0.0.1:{server.port}"
    assert f"{relay} timed out 5 times in a row: pausing 1 s" in result.output
    assert f"harkat-mail: {relay} stopped answering" in result.stderr
    rows = _report(project)
    states = [r["state"] for r in rows.values() if r["state"] != "skipped"]
    assert states.count("sent") == 5 and "failed" not in states
    pending = [r for r in rows.values() if r["state"] == "pending"]
    assert len(pending) > 100 and {r["attempts"] for r in pending} == {0}


def test_a_per_hour_wait_wakes_on_stop(smtp_server, tmp_path: Path) -> None:
    """Pacing by per_hour waits up to an hour; stopping the run ends the wait at once."""
    server, handler = smtp_server()
    started = time.monotonic()
    out = _deliver(
        server.port, ["a", "b", "c"], connections=1, per_hour=1, log=tmp_path / "l", stop_after=1
    )
    assert time.monotonic() - started < 10
    assert len(handler.messages) == 1 and [r.key for r in out.results] == ["a"]


def test_a_relay_refusing_our_sender_stops_the_run(smtp_server) -> None:
    """A 5.7.1 about the sender is the relay refusing us: the run stops, no member is failed."""
    server, _ = smtp_server(m=("rcpt", "553 5.7.1 <sender@example.org>: Sender address rejected"))
    seen = []
    with pytest.raises(RelayUnavailable, match="refuses us: 553 5.7.1"):
        seen.append(_deliver(server.port, [f"m{i}" for i in range(5)], connections=1))
    assert seen == []


def _report(project: Path) -> dict[str, dict[str, object]]:
    result = cli("report", str(project), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    return {row["email"]: row for row in (rows if isinstance(rows, list) else rows["recipients"])}


def test_relay_down_exits_3_and_burns_nobody(project: Path, unused_port: int) -> None:
    """Nothing listening: one line naming relay and cause, exit 3, every member still pending."""
    started = time.monotonic()
    result = send(project, unused_port)
    assert result.exit_code == 3, result.output
    assert time.monotonic() - started < 30
    errors = [line for line in result.stderr.splitlines() if line.startswith("harkat-mail:")]
    assert errors == [
        f"harkat-mail: cannot connect to 127.0.0.1:{unused_port}: connection refused; "
        "is the relay running?"
    ]
    assert "Traceback" not in result.output
    rows = _report(project)
    assert rows and {r["state"] for r in rows.values() if r["state"] != "skipped"} == {"pending"}
    assert {r["attempts"] for r in rows.values()} == {0}


def test_members_left_deferred_exit_1_and_the_rerun_says_when(project: Path, smtp_server) -> None:
    """A member deferred past this run: exit 1 and when it is due; a rerun says so, exit 1."""
    server, handler = smtp_server(
        grey=("rcpt", GREYLISTED.format("helene.roy4@mail.example.ca")),
    )
    handler.rules = {"helene.roy4@": handler.rules.pop("grey")}
    project.write_text(
        project.read_text(encoding="utf-8")
        + "retry:\n  attempts: 3\n  delays: [0.2, 3600]\n  max_age: 2d\n",
        encoding="utf-8",
    )
    first = send(project, server.port)
    assert first.exit_code == 1, first.output
    assert "1 deferred: the next is due at" in first.output
    assert handler.rcpt_calls["helene.roy4@mail.example.ca"] == 2
    again = send(project, server.port)
    assert again.exit_code == 1, again.output
    assert "the send log still has 1 deferred (the next is due" in again.output
    assert handler.rcpt_calls["helene.roy4@mail.example.ca"] == 2
    row = _report(project)["helene.roy4@mail.example.ca"]
    assert row["state"] == "deferred" and row["attempts"] == 2


def test_stopping_during_a_breaker_pause_ends_it_at_once(smtp_server) -> None:
    """Ctrl-C while the breaker pauses: the run ends at once, not after the pause and probes."""
    server, handler = smtp_server()
    handler.silence = (3, float("inf"))
    config = SmtpConfig(local=False, host="127.0.0.1", port=server.port, tls="none")
    config = replace(config, connections=1, timeout=1)
    paused: list[float] = []

    async def run() -> str:
        stop = asyncio.Event()

        async def stream() -> AsyncIterator[OutgoingMessage]:
            for message in _messages([f"m{i}" for i in range(20)]):
                yield message

        async def sending(_: OutgoingMessage) -> None:
            pass

        def notice(text: str) -> None:
            if "pausing" in text:
                paused.append(time.monotonic())
                stop.set()

        hooks = DeliveryHooks(sending, lambda *_: None, notice)
        return await deliver(config, QUICK, stream(), hooks, stop)

    assert asyncio.run(run()) == ""
    assert len(paused) == 1 and time.monotonic() - paused[0] < 3  # pause and probes: 6 s
