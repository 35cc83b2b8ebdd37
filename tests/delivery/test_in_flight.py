"""Two sends in flight per session (PIPELINING): each verdict reaches its own member."""

from __future__ import annotations

import json
from pathlib import Path

from harkat_mail.models import Outcome, RetryPolicy

from ..store.conftest import cli, send
from .servers import ModernHandler
from .test_scheduler import _deliver

QUICK = RetryPolicy(attempts=3, delays=(0.2,), throttle_pause=0.05)
RETRY_SOON = "retry:\n  attempts: 3\n  delays: [0.2]\n"


def _next_before_reply(handler: ModernHandler, read: bytes, reply: bytes) -> bool:
    """Whether the relay read ``read`` before it sent its first reply containing ``reply``."""
    with handler.lock:
        events = list(handler.events)
    got = next(i for i, (kind, data) in enumerate(events) if kind == "read" and read in data)
    sent = next(i for i, (kind, data) in enumerate(events) if kind == "reply" and reply in data)
    return got < sent


def _rows(project: Path) -> dict[str, dict[str, object]]:
    result = cli("report", str(project), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    return {row["email"]: row for row in (rows if isinstance(rows, list) else rows["recipients"])}


def test_the_next_envelope_leaves_behind_the_dot(modern_server) -> None:
    """With PIPELINING one session has the next message's RCPT at the relay before the dot's 250."""
    server, handler = modern_server(slow=("data", "slow:0.3", 1))
    out = _deliver(server.port, ["slow", "ann", "bob", "cy"], connections=1, policy=QUICK)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in ["slow", "ann", "bob", "cy"])
    assert _next_before_reply(handler, b"RCPT TO:<ann@", b"250 2.0.0 queued")
    assert handler.connections == 1
    assert all(handler.copies(f"{n}@example.org") == 1 for n in ["slow", "ann", "bob", "cy"])


def test_without_pipelining_one_send_at_a_time(modern_server) -> None:
    """A relay without PIPELINING never sees the next MAIL before the previous dot's reply."""
    server, handler = modern_server(extensions=(), slow=("data", "slow:0.3", 1))
    out = _deliver(server.port, ["slow", "ann", "bob"], connections=1, policy=QUICK)
    assert all(out.final()[n] == (Outcome.SENT, 250) for n in ["slow", "ann", "bob"])
    assert not _next_before_reply(handler, b"RCPT TO:<ann@", b"250 2.0.0 queued")


def test_a_refusal_of_the_second_while_the_first_is_in_flight(modern_server) -> None:
    """The 2nd's RCPT is refused while the 1st's dot waits: 550 to the 2nd, 250 to the 1st."""
    server, handler = modern_server(
        slow=("data", "slow:0.3", 1), bad=("rcpt", "550 5.1.1 no such user")
    )
    out = _deliver(server.port, ["slow", "bad", "ann", "bob"], connections=1, policy=QUICK)
    assert out.final() == {
        "slow": (Outcome.SENT, 250),
        "bad": (Outcome.FAILED, 550),
        "ann": (Outcome.SENT, 250),
        "bob": (Outcome.SENT, 250),
    }
    assert _next_before_reply(handler, b"RCPT TO:<bad@", b"250 2.0.0 queued")
    assert handler.copies("bad@example.org") == 0 and handler.connections == 1


def test_a_drop_after_the_dot_with_two_in_flight(modern_server) -> None:
    """Dropped after the 1st's dot, the 2nd's envelope behind it: unknown and deferred, then
    the 2nd is retried and delivered once; the 1st is never resent."""
    server, handler = modern_server(lost=("data", "drop-after-dot", 1), slow=("data", "slow:0.3"))
    names = ["slow", "lost", "next", "ann"]
    out = _deliver(server.port, names, connections=1, policy=QUICK)
    assert out.history("lost") == [Outcome.UNKNOWN]
    assert out.history("next") == [Outcome.DEFERRED, Outcome.SENT]
    assert out.final()["slow"] == out.final()["ann"] == (Outcome.SENT, 250)
    assert all(handler.copies(f"{n}@example.org") == 1 for n in names)
    assert handler.connections == 2
    assert out.sending.count("lost") == 1


def test_send_log_rows_with_two_in_flight(project: Path, modern_server) -> None:
    """Through ``send``: a refused member and one dropped after its dot get their own rows."""
    project.write_text(project.read_text(encoding="utf-8") + RETRY_SOON, encoding="utf-8")
    server, handler = modern_server(
        **{
            "helene.roy4@": ("rcpt", "550 5.1.1 no such user"),
            "lucas.macdonald79@": ("data", "drop-after-dot", 1),
        }
    )
    result = send(project, server.port)
    rows = _rows(project)
    assert "Traceback" not in result.output
    assert rows["helene.roy4@mail.example.ca"]["state"] == "bounced"
    assert rows["helene.roy4@mail.example.ca"]["code"] == 550
    lost = ["lucas.macdonald79@mail.example.ca"]
    assert rows[lost[0]]["state"] == "unknown", result.output
    rest = {
        email: row["state"]
        for email, row in rows.items()
        if row["state"] != "skipped" and email not in (lost[0], "helene.roy4@mail.example.ca")
    }
    assert rest and set(rest.values()) == {"sent"}, rest
    assert all(handler.copies(email) == 1 for email in [*rest, lost[0]])
    assert handler.connections >= 2
