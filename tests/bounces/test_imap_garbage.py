"""An IMAP server that hangs up or answers garbage mid-session: one error naming the command.

Dovecot cannot be made to misbehave, so this one server is a small asyncio fake over verified TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from harkat_mail.bounces.imap import ImapMailbox
from harkat_mail.errors import BounceSourceError

from ..dovecotserver import _certificate

ANSWERS = {
    "hang-up": b"",
    "garbage": b"\xff\xfe\x00 garbage {99999999}\r\n",
    "untagged only": b"* SEARCH 1 2 x\xff\r\n",
}


async def _serve(reply: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greets, logs in and selects like a server, then answers UID SEARCH with ``reply``."""
    writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    while line := await reader.readline():
        tag, _, rest = line.decode("ascii", "replace").partition(" ")
        command = rest.split(" ")[0].strip().upper()
        if command == "CAPABILITY":
            writer.write(b"* CAPABILITY IMAP4rev1\r\n" + tag.encode() + b" OK done\r\n")
        elif command in ("LOGIN", "LOGOUT"):
            writer.write(tag.encode() + b" OK done\r\n")
        elif command == "SELECT":
            writer.write(b"* 1 EXISTS\r\n" + tag.encode() + b" OK [READ-WRITE] done\r\n")
        else:
            writer.write(reply)
            await writer.drain()
            writer.close()
            return
        await writer.drain()


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_misbehaving_imap_server_is_one_error_naming_the_command(
    answer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hang-up, binary garbage or a reply never tagged after login ends in a BounceSourceError."""
    cert, key = _certificate(tmp_path)
    monkeypatch.setenv("HARKAT_TEST_IMAP_PASSWORD", "secret")

    async def go() -> str:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = await asyncio.start_server(
            lambda r, w: _serve(ANSWERS[answer], r, w), "127.0.0.1", 0, ssl=context
        )
        port = server.sockets[0].getsockname()[1]
        box = ImapMailbox(f"imaps://u@127.0.0.1:{port}/INBOX", "done", "HARKAT_TEST_IMAP_PASSWORD", cert)
        box.timeout = 2.0
        try:
            with pytest.raises(BounceSourceError) as caught:
                [item async for item in box.messages()]
        finally:
            await box.close()
            server.close()
        return str(caught.value)

    message = asyncio.run(asyncio.wait_for(go(), 60))
    assert message.startswith("imaps://u@127.0.0.1:") and "UID SEARCH failed" in message
    assert "\n" not in message


GREETINGS = {
    # aioimaplib sends CAPABILITY on its own after the greeting; these answer it so.
    "greet then hang up": (b"* OK ready\r\n", "close", "the server closed the connection"),
    "greet then silence": (b"* OK ready\r\n", "stay", "no answer in 1 s"),
    "garbage greeting": (b"\xff\xfe garbage\r\n", "stay", "bad greeting"),
}


async def _greet(hello: bytes, then: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(hello)
    await writer.drain()
    await reader.readline()  # the client's CAPABILITY, never answered
    if then == "stay":
        await asyncio.sleep(30)
    writer.close()


@pytest.mark.parametrize("case", sorted(GREETINGS))
def test_a_server_failing_before_login_ends_within_the_timeout(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that greets then hangs up, goes silent or greets with garbage: one line naming server and step, in time."""
    cert, key = _certificate(tmp_path)
    monkeypatch.setenv("HARKAT_TEST_IMAP_PASSWORD", "secret")
    hello, then, why = GREETINGS[case]

    async def go() -> str:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = await asyncio.start_server(
            lambda r, w: _greet(hello, then, r, w), "127.0.0.1", 0, ssl=context
        )
        port = server.sockets[0].getsockname()[1]
        box = ImapMailbox(f"imaps://u@127.0.0.1:{port}/INBOX", "done", "HARKAT_TEST_IMAP_PASSWORD", cert)
        box.timeout = 1.0
        try:
            with pytest.raises(BounceSourceError) as caught:
                [item async for item in box.messages()]
        finally:
            await box.close()
            server.close()
        return str(caught.value)

    # The outer bound is far above the 1 s timeout: it only turns a hang into a failure.
    message = asyncio.run(asyncio.wait_for(go(), 25))
    assert message.startswith("imaps://u@127.0.0.1:") and "greeting and CAPABILITY failed" in message
    assert why in message and "\n" not in message

