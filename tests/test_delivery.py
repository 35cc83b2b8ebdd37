"""Delivery against real aiosmtpd servers that misbehave: every reply lands in the right state."""

from __future__ import annotations

import asyncio

from harkat_mail.delivery import RateLimiter, deliver
from harkat_mail.models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig


def _messages(names: list[str]) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            key=n,
            sender="sender@example.org",
            recipient=f"{n}@example.org",
            message_id=f"<{n}@example.org>",
            data=f"Subject: hi {n}\r\nMessage-ID: <{n}@example.org>\r\n\r\nbody\r\n".encode(),
        )
        for n in names
    ]


def _deliver(
    port: int, names: list[str], connections: int = 2, **smtp: object
) -> tuple[dict[str, DeliveryResult], list[str]]:
    config = SmtpConfig(
        local=False,
        host="127.0.0.1",
        port=port,
        tls="none",
        connections=connections,
        timeout=5,
        **smtp,
    )  # type: ignore[arg-type]
    results: dict[str, DeliveryResult] = {}
    sending: list[str] = []

    async def run() -> None:
        queue: asyncio.Queue[OutgoingMessage | None] = asyncio.Queue()
        for message in _messages(names):
            queue.put_nowait(message)
        queue.put_nowait(None)
        await deliver(
            config, queue, lambda m: sending.append(m.key), lambda r: results.__setitem__(r.key, r)
        )

    asyncio.run(run())
    return results, sending


def test_replies_map_to_states(smtp_server) -> None:
    """250 -> sent, 550 at RCPT -> failed, 451 after DATA -> deferred, each with its code."""
    server, handler = smtp_server(
        bad=("rcpt", "550 5.1.1 unknown user"), busy=("data", "451 4.3.0 try later")
    )
    results, sending = _deliver(server.port, ["ok1", "bad", "busy", "ok2"])
    assert {k: (r.outcome, r.code) for k, r in results.items()} == {
        "ok1": (Outcome.SENT, 250),
        "ok2": (Outcome.SENT, 250),
        "bad": (Outcome.FAILED, 550),
        "busy": (Outcome.DEFERRED, 451),
    }
    assert "bad" not in sending  # refused at RCPT: never reached DATA
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["ok1@example.org", "ok2@example.org"]


def test_connection_dropped_after_the_dot_is_unknown(smtp_server) -> None:
    """A drop after the message went out is unknown, the others still go through."""
    server, handler = smtp_server(lost=("data", "drop-after-dot"))
    results, _ = _deliver(server.port, ["a", "lost", "b", "c"], connections=1)
    assert results["lost"].outcome == Outcome.UNKNOWN
    assert all(results[k].outcome == Outcome.SENT for k in ("a", "b", "c"))
    assert handler.connections == 2  # reconnected once after the drop


def test_sessions_are_reused(smtp_server) -> None:
    """Thirty messages over three connections open three sessions, not thirty."""
    server, handler = smtp_server()
    results, _ = _deliver(server.port, [f"m{i}" for i in range(30)], connections=3)
    assert all(r.outcome == Outcome.SENT for r in results.values()) and len(results) == 30
    assert handler.connections == 3


def test_unreachable_relay_defers_everything(unused_port: int) -> None:
    """With nothing listening, every message is deferred with a reason naming the relay."""
    results, sending = _deliver(unused_port, [f"m{i}" for i in range(10)])
    assert len(results) == 10 and sending == []
    assert all(r.outcome == Outcome.DEFERRED for r in results.values())
    assert "cannot connect to 127.0.0.1" in results["m0"].reply


def test_rate_limiter_is_shared() -> None:
    """One limiter spaces starts across all callers: 11 starts at 50/s take about 0.2 s."""

    async def run() -> float:
        limiter = RateLimiter(50)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(limiter.wait() for _ in range(11)))
        return loop.time() - start

    elapsed = asyncio.run(run())
    assert 0.18 <= elapsed < 0.5
