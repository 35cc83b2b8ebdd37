"""The lock-step transaction against a real aiosmtpd server: each side of the final dot reads right.

aiosmtpd does not advertise PIPELINING, so these run MAIL, RCPT, DATA one reply at a time.
"""

from __future__ import annotations

import asyncio

from harkat_mail.delivery.session import Session
from harkat_mail.delivery.smtpdata import dot_stuff
from harkat_mail.models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig

MESSAGE = (
    b"Subject: dots\r\nMessage-ID: <d@example.org>\r\n\r\n"
    b"first line\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast"
)


async def _send(port: int, recipient: str) -> DeliveryResult:
    config = SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none", timeout=5)
    session = Session(config, None)
    message = OutgoingMessage("k", "sender@example.org", recipient, "<d@example.org>", MESSAGE)

    async def sending(_: OutgoingMessage) -> None:
        pass

    try:
        return await session.send(message, sending)
    finally:
        await session.drop(polite=True)


def _transaction(port: int, recipient: str) -> DeliveryResult:
    return asyncio.run(_send(port, recipient))


def test_dot_stuffing_ends_in_crlf_and_doubles_leading_dots() -> None:
    """Every line starting with a dot gets a second one, and the data ends in CRLF."""
    assert dot_stuff(b"a\r\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n"
    assert dot_stuff(b"a\r\n") == b"a\r\n"


def test_accepted_message_arrives_byte_for_byte(smtp_server) -> None:
    """A 250 after the dot is returned, and the relay holds exactly the bytes given."""
    server, handler = smtp_server()
    result = _transaction(server.port, "ok@example.org")
    assert (result.outcome, result.code) == (Outcome.SENT, 250)
    (delivered,) = handler.messages
    assert delivered.data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n") + b"\n"


def test_refusal_after_the_dot_carries_the_relays_code(smtp_server) -> None:
    """A 554 after the dot is a failure with the relay's 554, not a lost connection."""
    server, _ = smtp_server(bad=("data", "554 5.7.1 content rejected"))
    result = _transaction(server.port, "bad@example.org")
    assert (result.outcome, result.code) == (Outcome.FAILED, 554)


def test_refusal_of_the_data_command_is_before_the_dot(smtp_server) -> None:
    """A 451 to DATA itself is a deferral with the relay's code, and nothing arrives."""
    server, handler = smtp_server(busy=("data-cmd", "451 4.3.0 try later"))
    result = _transaction(server.port, "busy@example.org")
    assert (result.outcome, result.code) == (Outcome.DEFERRED, 451) and handler.messages == []


def test_connection_closed_at_the_data_command_is_not_after_the_dot(smtp_server) -> None:
    """A relay that hangs up on DATA gives deferred, never unknown (nothing can have arrived)."""
    server, handler = smtp_server(gone=("data-cmd", "drop"))
    result = _transaction(server.port, "gone@example.org")
    assert result.outcome is Outcome.DEFERRED and handler.messages == []


def test_silence_after_the_dot_is_dot_sent(smtp_server) -> None:
    """A relay that keeps the message and hangs up before replying gives unknown."""
    server, handler = smtp_server(lost=("data", "drop-after-dot"))
    result = _transaction(server.port, "lost@example.org")
    assert result.outcome is Outcome.UNKNOWN and len(handler.messages) == 1
