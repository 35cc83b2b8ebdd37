"""PIPELINING (RFC 2920) and CHUNKING (RFC 3030) against real relays: every reply to its member.

The relays are aiosmtpd servers that advertise the extensions and record each TCP read, so a
test sees which commands arrived together in one flight.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import trustme

from harkat_mail.delivery.session import Session
from harkat_mail.errors import ClaimLost
from harkat_mail.models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig

from .servers import ModernHandler

BOTH = ("PIPELINING", "CHUNKING")


def _message(name: str) -> OutgoingMessage:
    data = (
        f"From: sender@example.org\r\nTo: {name}@example.org\r\nSubject: hi {name}\r\n"
        f"Message-ID: <{name}@example.org>\r\n\r\nbody of {name}\r\n.a line with a dot\r\n"
    ).encode()
    return OutgoingMessage(name, "sender@example.org", f"{name}@example.org", f"<{name}>", data)


def _send(
    port: int,
    names: list[str],
    sending: Callable[[OutgoingMessage], object] | None = None,
    may_send: Callable[[], bool] = lambda: True,
    timeout: float = 5,
) -> dict[str, DeliveryResult]:
    """Send ``names`` one after the other over one ``Session``; the verdict for each."""
    config = SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none", timeout=timeout)

    async def run() -> dict[str, DeliveryResult]:
        session = Session(config, None)

        async def hook(message: OutgoingMessage) -> None:
            if sending is not None:
                outcome = sending(message)
                if asyncio.iscoroutine(outcome):
                    await outcome

        try:
            return {n: await session.send(_message(n), hook, may_send) for n in names}
        finally:
            await session.drop(polite=True)

    return asyncio.run(run())


def _verdicts(results: dict[str, DeliveryResult]) -> dict[str, tuple[Outcome, int | None]]:
    return {key: (r.outcome, r.code) for key, r in results.items()}


def _delivered(handler: ModernHandler) -> dict[str, bytes]:
    """What the relay accepted, by recipient, each checked to parse as the message sent."""
    out = {}
    for delivered in handler.messages:
        (rcpt,) = delivered.rcpt_tos
        parsed = message_from_bytes(delivered.data, policy=policy.default)
        assert parsed["To"] == rcpt
        out[rcpt.split("@")[0]] = delivered.data
    return out


def _one_flight(handler: ModernHandler, *commands: bytes) -> bool:
    return any(all(c in read for c in commands) for read in handler.flights())


def test_envelope_and_data_travel_in_one_flight(modern_server) -> None:
    """With PIPELINING, MAIL, RCPT and DATA reach the relay in one read; all are delivered."""
    server, handler = modern_server()
    results = _send(server.port, ["ann", "bob", "cy"])
    assert _verdicts(results) == {n: (Outcome.SENT, 250) for n in ("ann", "bob", "cy")}
    assert sorted(_delivered(handler)) == ["ann", "bob", "cy"]
    assert _one_flight(handler, b"MAIL FROM:<sender@example.org>", b"RCPT TO:<bob@", b"DATA\r\n")
    assert handler.connections == 1


def test_message_body_waits_for_the_sending_commit(modern_server) -> None:
    """The body leaves only once the send log's `sending` commit is done, even when it is slow."""
    server, handler = modern_server()
    seen_at_commit: list[bool] = []

    async def slow_commit(message: OutgoingMessage) -> None:
        await asyncio.sleep(0.3)
        seen_at_commit.append(any(b"body of " in read for read in handler.flights()))

    results = _send(server.port, ["ann"], slow_commit)
    assert results["ann"].outcome is Outcome.SENT
    assert seen_at_commit == [False]


def test_refused_recipients_mid_pipeline_get_their_own_verdicts(modern_server) -> None:
    """A 550 and a 452 at RCPT in pipelined groups fail and defer those members only.

    The relay's 503 to the DATA that followed each refusal is read and the session RSET, so
    the next member's replies are its own and it is delivered on the same connection.
    """
    server, handler = modern_server(
        bad=("rcpt", "550 5.1.1 <bad@example.org>: no such user"),
        full=("rcpt", "452 4.2.2 Mailbox full"),
    )
    results = _send(server.port, ["ann", "bad", "full", "dee"])
    assert _verdicts(results) == {
        "ann": (Outcome.SENT, 250),
        "bad": (Outcome.FAILED, 550),
        "full": (Outcome.DEFERRED, 452),
        "dee": (Outcome.SENT, 250),
    }
    assert "no such user" in results["bad"].reply
    assert sorted(_delivered(handler)) == ["ann", "dee"]
    assert handler.connections == 1 and handler.rsets == 2


def test_drop_after_the_dot_of_a_pipelined_message_is_unknown(modern_server) -> None:
    """A relay that keeps a pipelined message and hangs up unanswered: unknown, not resent."""
    server, handler = modern_server(lost=("data", "drop-after-dot"))
    results = _send(server.port, ["ann", "lost", "cy"])
    assert _verdicts(results)["lost"] == (Outcome.UNKNOWN, None)
    assert results["ann"].outcome is Outcome.SENT and results["cy"].outcome is Outcome.SENT
    assert handler.copies("lost@example.org") == 1
    assert handler.connections == 2  # the next member went out on a new session


def test_hang_up_at_data_in_a_pipelined_group_is_deferred(modern_server) -> None:
    """A relay that hangs up on the pipelined DATA: deferred (nothing could arrive)."""
    server, handler = modern_server(gone=("data-cmd", "drop"))
    results = _send(server.port, ["gone", "ann"])
    assert results["gone"].outcome is Outcome.DEFERRED
    assert results["ann"].outcome is Outcome.SENT
    assert sorted(_delivered(handler)) == ["ann"]


def test_send_log_refusal_in_a_pipelined_group_sends_nothing(modern_server) -> None:
    """When the `sending` commit is refused, no body leaves; the session carries on."""
    server, handler = modern_server()

    def sending(message: OutgoingMessage) -> None:
        if message.key == "taken":
            raise ClaimLost("send log: another run holds taken")

    results = _send(server.port, ["taken", "ann"], sending)
    assert results["taken"].outcome is Outcome.LOST
    assert results["ann"].outcome is Outcome.SENT
    assert sorted(_delivered(handler)) == ["ann"]
    assert not any(b"body of taken" in read for read in handler.flights())


def test_may_send_no_keeps_the_message_back(modern_server) -> None:
    """When the run may no longer send, nothing of the message reaches the relay."""
    server, handler = modern_server()
    results = _send(server.port, ["ann"], may_send=lambda: False)
    assert results["ann"].outcome is Outcome.DEFERRED
    assert handler.messages == [] and handler.rcpt_calls == {}


def test_without_pipelining_each_command_waits_for_its_reply(modern_server) -> None:
    """A relay that does not offer PIPELINING gets lock-step commands, and delivery works."""
    server, handler = modern_server(extensions=(), bad=("rcpt", "550 5.1.1 unknown"))
    results = _send(server.port, ["ann", "bad", "cy"])
    assert _verdicts(results) == {
        "ann": (Outcome.SENT, 250),
        "bad": (Outcome.FAILED, 550),
        "cy": (Outcome.SENT, 250),
    }
    assert not _one_flight(handler, b"MAIL FROM", b"RCPT TO")
    assert sorted(_delivered(handler)) == ["ann", "cy"]


def test_chunking_sends_the_message_as_one_bdat_without_dot_stuffing(modern_server) -> None:
    """With CHUNKING and PIPELINING: MAIL, RCPT and BDAT LAST in one flight, bytes unchanged."""
    server, handler = modern_server(extensions=BOTH)
    results = _send(server.port, ["ann", "bob"])
    assert _verdicts(results) == {"ann": (Outcome.SENT, 250), "bob": (Outcome.SENT, 250)}
    delivered = _delivered(handler)
    assert delivered["bob"] == _message("bob").data  # ".a line with a dot" not doubled
    assert _one_flight(handler, b"MAIL FROM", b"RCPT TO:<bob@", b"BDAT ", b" LAST\r\n")
    assert not _one_flight(handler, b"DATA\r\n")


def test_bdat_flight_leaves_after_the_sending_commit(modern_server) -> None:
    """With BDAT the message travels with the envelope, so the commit comes before the flight."""
    server, handler = modern_server(extensions=BOTH)
    seen_at_commit: list[bool] = []

    async def slow_commit(message: OutgoingMessage) -> None:
        await asyncio.sleep(0.3)
        seen_at_commit.append(_one_flight(handler, b"RCPT TO:<ann@"))

    assert _send(server.port, ["ann"], slow_commit)["ann"].outcome is Outcome.SENT
    assert seen_at_commit == [False]


def test_refused_recipient_before_bdat_is_matched_and_the_chunk_refused(modern_server) -> None:
    """A 550 at RCPT in a BDAT group fails that member; the BDAT refusal is consumed."""
    server, handler = modern_server(extensions=BOTH, bad=("rcpt", "550 5.1.1 unknown"))
    results = _send(server.port, ["bad", "ann"])
    assert _verdicts(results) == {"bad": (Outcome.FAILED, 550), "ann": (Outcome.SENT, 250)}
    assert sorted(_delivered(handler)) == ["ann"]
    assert handler.connections == 1


def test_drop_after_bdat_last_is_unknown(modern_server) -> None:
    """A relay that keeps a BDAT LAST message and hangs up unanswered: unknown, one copy."""
    server, handler = modern_server(extensions=BOTH, lost=("data", "drop-after-dot"))
    results = _send(server.port, ["lost", "ann"])
    assert results["lost"].outcome is Outcome.UNKNOWN
    assert results["ann"].outcome is Outcome.SENT
    assert handler.copies("lost@example.org") == 1


def test_chunking_without_pipelining_is_lock_step_bdat(modern_server) -> None:
    """CHUNKING alone: MAIL and RCPT one at a time, then the message as BDAT LAST."""
    server, handler = modern_server(extensions=("CHUNKING",))
    results = _send(server.port, ["ann"])
    assert results["ann"].outcome is Outcome.SENT
    assert _delivered(handler)["ann"] == _message("ann").data
    assert not _one_flight(handler, b"MAIL FROM", b"RCPT TO")
    assert _one_flight(handler, b"BDAT ")


def test_421_in_a_pipelined_group_defers_and_reconnects(modern_server) -> None:
    """A 421 to a pipelined RCPT defers that member; the next goes out on a new session."""
    server, handler = modern_server(closing=("rcpt", "421 4.7.0 closing, too many errors"))
    results = _send(server.port, ["closing", "ann"])
    assert _verdicts(results) == {"closing": (Outcome.DEFERRED, 421), "ann": (Outcome.SENT, 250)}
    assert sorted(_delivered(handler)) == ["ann"] and handler.connections == 2


def test_silence_in_a_pipelined_group_is_deferred_not_unknown(modern_server) -> None:
    """A relay that goes quiet before 354 (read timeout): deferred, since no body was sent."""
    server, handler = modern_server(slow=("rcpt", "slow:2", 1))
    results = _send(server.port, ["slow", "ann"], timeout=0.5)
    assert results["slow"].outcome is Outcome.DEFERRED and "no reply" in results["slow"].reply
    assert results["ann"].outcome is Outcome.SENT
    assert handler.copies("slow@example.org") == 0


def _send_overlapping(port: int, names: list[str], callers: int = 2) -> dict[str, DeliveryResult]:
    """``callers`` tasks share one ``Session``, each sending the next name as soon as it can."""
    config = SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none", timeout=5)

    async def run() -> dict[str, DeliveryResult]:
        session = Session(config, None)
        waiting = list(names)
        results: dict[str, DeliveryResult] = {}

        async def hook(_: OutgoingMessage) -> None:
            pass

        async def caller() -> None:
            while waiting:
                name = waiting.pop(0)
                results[name] = await session.send(_message(name), hook)

        try:
            await asyncio.gather(*(caller() for _ in range(callers)))
        finally:
            await session.drop(polite=True)
        return results

    return asyncio.run(run())


def _read_before_reply(handler: ModernHandler, read: bytes, reply: bytes) -> bool:
    """Whether the relay received ``read`` before it sent its first reply containing ``reply``."""
    with handler.lock:
        events = list(handler.events)
    got = next(i for i, (kind, data) in enumerate(events) if kind == "read" and read in data)
    sent = next(i for i, (kind, data) in enumerate(events) if kind == "reply" and reply in data)
    return got < sent


def test_overlapping_sends_put_the_next_envelope_behind_the_dot(modern_server) -> None:
    """Two callers on one session: the next envelope reaches the relay before the dot's reply."""
    server, handler = modern_server(slow=("data", "slow:0.3", 1))
    results = _send_overlapping(server.port, ["slow", "ann", "bob", "cy"])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    assert sorted(_delivered(handler)) == ["ann", "bob", "cy", "slow"]
    assert _read_before_reply(handler, b"RCPT TO:<ann@", b"250 2.0.0 queued")
    assert handler.connections == 1


def test_refusals_behind_a_dot_reach_their_own_callers(modern_server) -> None:
    """Overlapped: a 554 to one dot and a 550 to the next RCPT go to the right members."""
    server, handler = modern_server(
        spam=("data", "554 5.7.1 content refused"), bad=("rcpt", "550 5.1.1 no such user")
    )
    results = _send_overlapping(server.port, ["ann", "spam", "bob", "bad", "cy"])
    assert _verdicts(results) == {
        "ann": (Outcome.SENT, 250),
        "spam": (Outcome.FAILED, 554),
        "bad": (Outcome.FAILED, 550),
        "bob": (Outcome.SENT, 250),
        "cy": (Outcome.SENT, 250),
    }
    assert sorted(_delivered(handler)) == ["ann", "bob", "cy"]
    assert handler.connections == 1


def test_drop_after_a_dot_with_the_next_envelope_behind_it(modern_server) -> None:
    """Overlapped: the dropped message is unknown, the one behind it deferred, never sent."""
    server, handler = modern_server(lost=("data", "drop-after-dot"))
    results = _send_overlapping(server.port, ["lost", "next", "ann", "bob"])
    assert results["lost"].outcome is Outcome.UNKNOWN
    assert results["next"].outcome is Outcome.DEFERRED
    assert results["ann"].outcome is Outcome.SENT and results["bob"].outcome is Outcome.SENT
    assert handler.copies("lost@example.org") == 1 and handler.copies("next@example.org") == 0


def test_pipelining_over_starttls_with_overlapping_sends(modern_server, tmp_path: Path) -> None:
    """Over a verified STARTTLS session (the relay refuses mail without it), pipelined and
    overlapped sends all arrive intact."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server, handler = modern_server(smtp={"tls_context": context, "require_starttls": True})
    config = SmtpConfig(
        local=False, host="127.0.0.1", port=server.port, tls="starttls", ca_file=ca_file
    )

    async def run() -> list[DeliveryResult]:
        session = Session(config, None)

        async def hook(_: OutgoingMessage) -> None:
            pass

        try:
            return list(
                await asyncio.gather(*(session.send(_message(n), hook) for n in ("ann", "bob")))
            )
        finally:
            await session.drop(polite=True)

    results = asyncio.run(run())
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert sorted(_delivered(handler)) == ["ann", "bob"]
    assert _one_flight(handler, b"MAIL FROM", b"RCPT TO:<ann@", b"DATA\r\n")
