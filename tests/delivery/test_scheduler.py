"""Delivery against real aiosmtpd servers that misbehave on purpose: every reply lands right."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harkat_mail.delivery import DeliveryHooks, deliver
from harkat_mail.errors import RelayUnavailable
from harkat_mail.models import DeliveryResult, Outcome, OutgoingMessage, RetryPolicy, SmtpConfig
from harkat_mail.run.claims import budget_for
from harkat_mail.store import SqliteStore

FAST_RETRY = RetryPolicy(attempts=3, delays=(0.05, 0.1), throttle_pause=0.05)


def _messages(names: list[str]) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            key=n,
            sender="sender@example.org",
            recipient=f"{n}@example.org",
            message_id=f"<{n}@example.org>",
            data=f"Subject: hi {n}\r\nMessage-ID: <{n}@example.org>\r\n\r\nbody\r\n.dot\r\n".encode(),
        )
        for n in names
    ]


@dataclass
class Outcomes:
    """Everything delivery reported, in order."""

    results: list[DeliveryResult] = field(default_factory=list)
    sending: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stopped: str = ""

    def final(self) -> dict[str, tuple[Outcome, int | None]]:
        return {r.key: (r.outcome, r.code) for r in self.results}

    def history(self, key: str) -> list[Outcome]:
        return [r.outcome for r in self.results if r.key == key]


def _deliver(
    port: int,
    names: list[str],
    connections: int = 2,
    policy: RetryPolicy = FAST_RETRY,
    stop_after: int | None = None,
    log: Path | None = None,
    **smtp: object,
) -> Outcomes:
    config = SmtpConfig(
        local=False,
        host="127.0.0.1",
        port=port,
        tls=smtp.pop("tls", "none"),
        connections=connections,
        timeout=smtp.pop("timeout", 5),
        **smtp,
    )  # type: ignore[arg-type]
    out = Outcomes()

    async def run() -> None:
        stop = asyncio.Event()

        async def stream() -> AsyncIterator[OutgoingMessage]:
            for message in _messages(names):
                yield message

        async def sending(message: OutgoingMessage) -> None:
            out.sending.append(message.key)

        def result(r: DeliveryResult, _: float | None) -> None:
            out.results.append(r)
            if stop_after is not None and len(out.results) >= stop_after:
                stop.set()

        store = SqliteStore(log) if log is not None else None
        budget = budget_for(store, config) if store is not None else None
        try:
            out.stopped = await deliver(
                config,
                policy,
                stream(),
                DeliveryHooks(sending, result, out.notices.append),
                stop,
                budget=budget,
            )
        finally:
            if store is not None:
                await store.close()

    asyncio.run(run())
    return out


def test_replies_map_to_states(smtp_server) -> None:
    """250 -> sent, 550 at RCPT -> failed and never retried; each verdict keeps its code."""
    server, handler = smtp_server(bad=("rcpt", "550 5.1.1 unknown user"))
    out = _deliver(server.port, ["ok1", "bad", "ok2"])
    assert out.final() == {
        "ok1": (Outcome.SENT, 250),
        "ok2": (Outcome.SENT, 250),
        "bad": (Outcome.FAILED, 550),
    }
    assert handler.rcpt_calls["bad@example.org"] == 1 and "bad" not in out.sending
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["ok1@example.org", "ok2@example.org"]


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data-cmd", "data"])
def test_a_4xx_defers_then_the_retry_delivers_once(smtp_server, stage: str) -> None:
    """A 451 at MAIL, RCPT, DATA or after the dot defers; the in-run retry delivers one copy."""
    server, handler = smtp_server()
    if stage == "mail":  # MAIL names no recipient yet: refuse the run's first MAIL instead
        handler.throttle_first = 1
    else:
        handler.rules["busy"] = (stage, "451 4.3.0 try again", 1)
    out = _deliver(server.port, ["busy"], connections=1)
    assert out.history("busy") == [Outcome.DEFERRED, Outcome.SENT]
    assert out.results[0].code == 451 and "4." in out.results[0].reply
    assert handler.copies("busy@example.org") == 1


def test_deferred_every_time_fails_after_the_attempt_limit(smtp_server) -> None:
    """A recipient deferred on every try is failed after the policy's attempts, saying so."""
    server, handler = smtp_server(stuck=("rcpt", "452 4.2.2 mailbox full"))
    out = _deliver(server.port, ["stuck", "fine"])
    assert out.history("stuck") == [Outcome.DEFERRED, Outcome.DEFERRED, Outcome.FAILED]
    assert (
        "gave up after 3 attempts" in out.results[-1].reply
        or "gave up" in [r.reply for r in out.results if r.key == "stuck"][-1]
    )
    assert handler.rcpt_calls["stuck@example.org"] == 3
    assert out.final()["fine"] == (Outcome.SENT, 250)


def test_421_closes_the_session_without_rset_and_goes_on(smtp_server) -> None:
    """A 421 drops that session (no RSET), defers the recipient, and later ones still go."""
    server, handler = smtp_server(closing=("rcpt", "421 4.3.2 shutting down", 1))
    out = _deliver(server.port, ["a", "closing", "b", "c"], connections=1)
    assert out.history("closing") == [Outcome.DEFERRED, Outcome.SENT]
    assert all(out.final()[k] == (Outcome.SENT, 250) for k in "abc")
    assert handler.rsets == 0 and handler.connections == 2


def test_drop_before_the_dot_is_deferred_and_retried(smtp_server) -> None:
    """A connection closed at DATA, before the dot, defers; the retry delivers exactly once."""
    server, handler = smtp_server(cut=("data-cmd", "drop", 1))
    out = _deliver(server.port, ["cut", "after"], connections=1)
    assert out.history("cut") == [Outcome.DEFERRED, Outcome.SENT]
    assert handler.copies("cut@example.org") == 1 and handler.copies("after@example.org") == 1


def test_drop_after_the_dot_is_unknown_and_not_resent(smtp_server) -> None:
    """No reply after the dot: unknown, never retried by the run, the others still go."""
    server, handler = smtp_server(lost=("data", "drop-after-dot"))
    out = _deliver(server.port, ["a", "lost", "b", "c"], connections=1)
    assert out.history("lost") == [Outcome.UNKNOWN]
    assert all(out.final()[k] == (Outcome.SENT, 250) for k in "abc")
    assert handler.copies("lost@example.org") == 1
    assert handler.connections == 2  # reconnected once after the drop


def test_a_slow_reply_times_out_and_the_run_does_not_hang(smtp_server) -> None:
    """A reply slower than the timeout defers that try; the run ends on its own."""
    server, _handler = smtp_server(slow=("rcpt", "slow:3", 1))
    started = time.monotonic()
    out = _deliver(server.port, ["slow", "quick"], connections=1, timeout=0.5)
    assert time.monotonic() - started < 3
    assert out.history("slow")[0] == Outcome.DEFERRED and "Timeout" in out.results[0].reply
    assert out.final()["quick"] == (Outcome.SENT, 250)


def test_throttling_slows_down_on_its_own_budget(smtp_server) -> None:
    """Rate-limit replies lower the send rate and say so; with retry.attempts 1 they use the
    throttling budget instead, so everyone is still delivered once."""
    server, handler = smtp_server(throttle_first=4)
    names = [f"m{i}" for i in range(6)]
    out = _deliver(
        server.port, names, connections=2, policy=RetryPolicy(attempts=1, delays=(0.05,))
    )
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in names)
    assert any("slowing down" in n for n in out.notices)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)


def test_sessions_are_reused(smtp_server) -> None:
    """Thirty messages over three connections open three sessions, not thirty."""
    server, handler = smtp_server()
    out = _deliver(server.port, [f"m{i}" for i in range(30)], connections=3)
    assert len(out.final()) == 30 and all(v == (Outcome.SENT, 250) for v in out.final().values())
    assert handler.connections == 3


def test_stop_finishes_what_is_in_flight_and_starts_nothing_new(smtp_server) -> None:
    """After stop is set, no new message starts; every started one gets its verdict."""
    server, handler = smtp_server()
    out = _deliver(server.port, [f"m{i}" for i in range(50)], connections=2, stop_after=5)
    assert 5 <= len(out.results) < 50
    assert set(out.sending) == {r.key for r in out.results}
    assert len(handler.messages) == len(out.results)


def test_unreachable_relay_stops_the_run(unused_port: int) -> None:
    """With nothing listening, the run stops naming the relay and the cause; no verdict given."""
    seen: list[Outcomes] = []
    with pytest.raises(RelayUnavailable, match=f"cannot connect to 127.0.0.1:{unused_port}: "
                       "connection refused; is the relay running"):
        seen.append(_deliver(unused_port, [f"m{i}" for i in range(10)]))
    assert seen == []


def test_rate_is_shared_across_connections(smtp_server) -> None:
    """40 messages/s over 4 connections: 80 messages take 2 s, within 5%."""
    server, handler = smtp_server()
    started = time.monotonic()
    out = _deliver(server.port, [f"m{i}" for i in range(81)], connections=4, rate=40.0)
    elapsed = time.monotonic() - started
    assert len(handler.messages) == 81 and len(out.results) == 81
    assert 2.0 * 0.95 <= elapsed <= 2.0 * 1.05 + 0.3  # + connection set-up


def test_daily_cap_stops_the_run(smtp_server, tmp_path: Path) -> None:
    """A per-day cap in the shared budget stops the run once used up, naming when to resume."""
    server, handler = smtp_server()
    log = tmp_path / "log.sqlite"
    out = _deliver(server.port, [f"m{i}" for i in range(10)], connections=1, per_day=4, log=log)
    assert len(handler.messages) == 4 and "daily cap of 4" in out.stopped
    # The cap is the store's, so a second run on the same relay sends nothing today.
    again = _deliver(server.port, ["late"], connections=1, per_day=4, log=log)
    assert len(handler.messages) == 4 and "daily cap of 4" in again.stopped
