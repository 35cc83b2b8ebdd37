"""Replies the way real relays send them: multi-line, several in one packet, or byte by byte."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy

from harkat_mail.delivery.session import Session
from harkat_mail.models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: raw\r\n\r\nhello\r\n"


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
) -> None:
    """A pipelining relay that writes every reply one byte at a time, multi-line where it can."""

    async def say(text: bytes) -> None:
        for i in range(len(text)):
            writer.write(text[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    await say(b"220 raw.example ESMTP\r\n")
    await reader.readuntil(b"\r\n")  # EHLO
    await say(b"250-raw.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    await reader.readuntil(b"DATA\r\n")
    await say(b"250-sender\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
    received.append(await reader.readuntil(b"\r\n.\r\n"))
    await say(b"250-queued as\r\n250 2.0.0 X1\r\n")
    await reader.readuntil(b"\r\n")  # QUIT
    await say(b"221 bye\r\n")
    writer.close()


def test_split_and_multi_line_replies_reach_the_right_command() -> None:
    """Replies arriving byte by byte, some multi-line, are parsed whole and in order."""
    received: list[bytes] = []

    async def run() -> DeliveryResult:
        server = await asyncio.start_server(
            lambda r, w: _relay(r, w, received), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        config = SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none", timeout=5)
        session = Session(config, None)
        message = OutgoingMessage("k", "a@example.org", "b@example.org", "<r@example>", MESSAGE)

        async def sending(_: OutgoingMessage) -> None:
            pass

        try:
            return await session.send(message, sending)
        finally:
            await session.drop(polite=True)
            server.close()

    result = asyncio.run(run())
    assert (result.outcome, result.code) == (Outcome.SENT, 250)
    assert result.reply == "queued as\n2.0.0 X1"
    (data,) = received
    parsed = message_from_bytes(data[: -len(b".\r\n")], policy=policy.default)
    assert parsed["Subject"] == "raw" and parsed.get_content().strip() == "hello"
