"""The split DATA step against a real aiosmtpd server: each side of the final dot reads right."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from harkat_mail.delivery.smtpdata import DotSent, dot_stuff, send_data

MESSAGE = (
    b"Subject: dots\r\nMessage-ID: <d@example.org>\r\n\r\n"
    b"first line\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast"
)


async def _transaction(port: int, recipient: str) -> aiosmtplib.SMTPResponse:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        await client.mail("sender@example.org")
        await client.rcpt(recipient)
        return await send_data(client, MESSAGE, timeout=5)
    finally:
        client.close()


def test_dot_stuffing_ends_in_crlf_and_doubles_leading_dots() -> None:
    """Every line starting with a dot gets a second one, and the data ends in CRLF."""
    assert dot_stuff(b"a\r\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n"
    assert dot_stuff(b"a\r\n") == b"a\r\n"


def test_accepted_message_arrives_byte_for_byte(smtp_server) -> None:
    """A 250 after the dot is returned, and the relay holds exactly the bytes given."""
    server, handler = smtp_server()
    response = asyncio.run(_transaction(server.port, "ok@example.org"))
    assert response.code == 250
    (delivered,) = handler.messages
    assert delivered.data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n") + b"\n"


def test_refusal_after_the_dot_carries_the_relays_code(smtp_server) -> None:
    """A 554 after the dot raises SMTPDataError with 554, not a lost connection."""
    server, _ = smtp_server(bad=("data", "554 5.7.1 content rejected"))
    with pytest.raises(aiosmtplib.SMTPDataError) as raised:
        asyncio.run(_transaction(server.port, "bad@example.org"))
    assert raised.value.code == 554


def test_refusal_of_the_data_command_is_before_the_dot(smtp_server) -> None:
    """A 451 to DATA itself is the relay's code, and nothing arrives."""
    server, handler = smtp_server(busy=("data-cmd", "451 4.3.0 try later"))
    with pytest.raises(aiosmtplib.SMTPDataError) as raised:
        asyncio.run(_transaction(server.port, "busy@example.org"))
    assert raised.value.code == 451 and handler.messages == []


def test_connection_closed_at_the_data_command_is_not_after_the_dot(smtp_server) -> None:
    """A relay that hangs up on DATA raises a disconnect, never DotSent (nothing can have arrived)."""
    server, handler = smtp_server(gone=("data-cmd", "drop"))
    with pytest.raises(aiosmtplib.SMTPException) as raised:
        asyncio.run(_transaction(server.port, "gone@example.org"))
    assert not isinstance(raised.value, DotSent) and handler.messages == []


def test_silence_after_the_dot_is_dot_sent(smtp_server) -> None:
    """A relay that keeps the message and hangs up before replying raises DotSent."""
    server, handler = smtp_server(lost=("data", "drop-after-dot"))
    with pytest.raises(DotSent):
        asyncio.run(_transaction(server.port, "lost@example.org"))
    assert len(handler.messages) == 1
