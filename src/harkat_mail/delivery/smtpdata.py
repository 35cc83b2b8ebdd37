"""The mail transaction on the wire: the one place below aiosmtplib's command API.

aiosmtplib opens and negotiates the session (TLS, EHLO, AUTH). Its reply reader expects one
reply per command, read before the next command is written: replies that arrive together
are lost. For RFC 2920 pipelining the transactions therefore run on ``Wire``, a protocol of
our own that takes over the negotiated transport (``SMTP.protocol.transport`` and
``transport.set_protocol``) and queues every reply in order. That is below the command API,
so pyproject.toml bounds aiosmtplib's version and tests/delivery pins the behaviour.

A lost connection is placed on the right side of the final dot (or of ``BDAT ... LAST``):
before it the relay cannot have accepted the message (``Undelivered``); after it, it may have
(``DotSent``, never resent on its own).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse

from ..errors import HarkatError
from ..models import OutgoingMessage

MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP: the session is cut
_REPLY_LINE = re.compile(rb"(\d{3})([ -]?)(.*)")


class Undelivered(Exception):
    """The session broke before the final dot: the relay cannot have accepted the message."""


class DotSent(Exception):
    """The session broke after the final dot, before the reply: the message may have arrived."""


class HookRefused(Exception):
    """The ``sending`` hook refused (the send log): nothing was sent, the session is clean."""

    def __init__(self, error: HarkatError) -> None:
        super().__init__(str(error))
        self.error = error


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 transparency, ending in CRLF; the data starts with a header, not a dot."""
    body = data.replace(b"\n.", b"\n..") if b"\n." in data else data
    return body if body.endswith(b"\r\n") else body + b"\r\n"


class Wire(asyncio.Protocol):
    """A negotiated SMTP connection whose replies queue up in order, several in flight."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.replies: deque[SMTPResponse] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False
        self.why = ""  # why the last reply did not come

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP) -> Wire:
        """Move ``client``'s connection (after EHLO, STARTTLS, AUTH) onto a new ``Wire``."""
        protocol = client.protocol
        transport = protocol.transport if protocol is not None else None
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the transaction")
        wire = cls(transport)  # type: ignore[arg-type]
        transport.set_protocol(wire)
        return wire

    @property
    def connected(self) -> bool:
        return not self.lost and not self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        while (reply := self._parse()) is not None:
            self.replies.append(reply)
        if len(self.buffer) > MAX_REPLY:
            self.transport.abort()
        self._wake()

    def _parse(self) -> SMTPResponse | None:
        """One complete (possibly multi-line) reply off the buffer, or None."""
        offset, lines = 0, []
        while (end := self.buffer.find(b"\n", offset)) != -1:
            match = _REPLY_LINE.match(bytes(self.buffer[offset:end]).rstrip(b"\r"))
            offset = end + 1
            if match is None:  # garbage instead of a reply: no way to pair replies now
                self.transport.abort()
                return None
            lines.append(match.group(3).strip().decode("utf-8", "surrogateescape"))
            if match.group(2) != b"-":
                del self.buffer[:offset]
                return SMTPResponse(int(match.group(1)), "\n".join(lines))
        return None

    def eof_received(self) -> bool:
        return False  # the relay hung up: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def write(self, data: bytes) -> None:
        if not self.connected:
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        self.transport.write(data)

    async def reply(self, timeout: float | None) -> SMTPResponse:
        """The next reply in order; a lost connection or silence raises."""
        while not self.replies:
            if self.lost:
                raise aiosmtplib.SMTPServerDisconnected("connection lost")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, timeout)
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError("no reply from the relay") from exc
        return self.replies.popleft()

    async def command(self, line: bytes, timeout: float | None) -> SMTPResponse:
        self.write(line + b"\r\n")
        return await self.reply(timeout)

    def close(self) -> None:
        self.lost = True
        self.transport.close()


@dataclass(frozen=True)
class Offer:
    """What the relay advertised in its EHLO reply that changes the transaction."""

    pipelining: bool = False
    chunking: bool = False


def _refused(reply: SMTPResponse) -> aiosmtplib.SMTPResponseException:
    return aiosmtplib.SMTPResponseException(reply.code, reply.message)


async def _clean_up(wire: Wire, timeout: float | None, replies: list[SMTPResponse]) -> None:
    """After a refused transaction: RSET, or hang up when RSET is impossible or pointless.

    421 means the relay is closing; a 354 in a refused group means the relay waits for data
    that must not come (only a cut session ends that without delivering anything).
    """
    if any(r.code in (421, 354) for r in replies) or not wire.connected:
        wire.close()
        return
    try:
        if (await wire.command(b"RSET", timeout)).code != 250:
            wire.close()
    except (aiosmtplib.SMTPException, OSError):
        wire.close()


async def _replies(wire: Wire, count: int, timeout: float | None) -> list[SMTPResponse]:
    """Up to ``count`` replies in order; fewer when the connection is lost or goes silent
    (``wire.why`` then says which)."""
    got: list[SMTPResponse] = []
    try:
        while len(got) < count:
            got.append(await wire.reply(timeout))
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPReadTimeoutError) as exc:
        wire.why = f"{type(exc).__name__}: {exc}"
    return got


def _first_refusal(replies: list[SMTPResponse], wanted: tuple[int, ...]) -> SMTPResponse | None:
    for reply, ok in zip(replies, wanted, strict=False):
        if reply.code != ok and not (ok == 250 and reply.code == 251):
            return reply
    return None


def _envelope(message: OutgoingMessage) -> list[bytes]:
    # Addresses are validated upstream (no CR/LF can reach this point).
    return [
        b"MAIL FROM:<" + message.sender.encode() + b">\r\n",
        b"RCPT TO:<" + message.recipient.encode() + b">\r\n",
    ]


async def transaction(
    wire: Wire,
    offer: Offer,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
) -> SMTPResponse:
    """One message to one recipient; the relay's 250, or an exception saying what happened.

    ``SMTPResponseException``: the relay refused (its code; the session was RSET or cut).
    ``HookRefused``: the send log refused. ``Undelivered`` / ``DotSent``: the connection was
    lost before / after the point where the relay could accept the message. ``sending`` is
    awaited (committed) before any byte of the message leaves; ``may_send`` is asked before
    the transaction and again right before the message data.
    """
    if not may_send():
        raise Undelivered("not sent: this run may no longer hold the member")
    if offer.pipelining and offer.chunking:
        return await _pipelined_bdat(wire, message, timeout, sending, may_send)
    if offer.pipelining:
        return await _pipelined_data(wire, message, timeout, sending, may_send)
    return await _lock_step(wire, offer, message, timeout, sending, may_send)


async def _hook(wire: Wire, sending: Callable[[], Awaitable[None]]) -> None:
    try:
        await sending()
    except HarkatError as exc:
        raise HookRefused(exc) from exc
    except BaseException:
        wire.close()  # a broken send log: this session is in an unknown state
        raise


async def _lock_step(
    wire: Wire,
    offer: Offer,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
) -> SMTPResponse:
    """No PIPELINING: each command waits for its reply; the hook runs once RCPT is accepted."""
    try:
        for line in _envelope(message):
            reply = await wire.command(line[:-2], timeout)
            if _first_refusal([reply], (250,)):
                await _clean_up(wire, timeout, [reply])
                raise _refused(reply)
        try:
            await _hook(wire, sending)
        except HookRefused:
            await _clean_up(wire, timeout, [])
            raise
        if offer.chunking:
            return await _bdat(wire, message, timeout, may_send)
        start = await wire.command(b"DATA", timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPReadTimeoutError):
        wire.close()  # before the message data: the caller reads it as deferred
        raise
    if start.code != 354:
        await _clean_up(wire, timeout, [start])
        raise _refused(start)
    return await _body_and_dot(wire, message, timeout, may_send)


async def _pipelined_data(
    wire: Wire,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
) -> SMTPResponse:
    """MAIL, RCPT and DATA in one flight (RFC 2920), then the message once 354 is in.

    The ``sending`` commit starts with the flight and is awaited before the message body is
    written: the commit overlaps the round trip, and no message data leaves before it. A
    refused RCPT then finds the row `sending` for a moment before its verdict replaces it;
    a crash in that moment leaves it `unknown`, which errs on the side of not resending.
    """
    hook = asyncio.ensure_future(_hook(wire, sending))
    try:
        wire.write(b"".join(_envelope(message)) + b"DATA\r\n")
        replies = await _replies(wire, 3, timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        replies, wire.why = [], f"{type(exc).__name__}: {exc}"
    except BaseException:
        hook.cancel()
        raise
    try:
        await hook
    except HookRefused:
        await _clean_up(wire, timeout, replies)
        raise
    refusal = _first_refusal(replies, (250, 250, 354))
    if refusal is not None:
        await _clean_up(wire, timeout, replies)
        raise _refused(refusal)
    if len(replies) < 3:
        wire.close()
        raise Undelivered(f"no reply before the message data ({wire.why})")
    return await _body_and_dot(wire, message, timeout, may_send)


async def _pipelined_bdat(
    wire: Wire,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
) -> SMTPResponse:
    """MAIL, RCPT and ``BDAT <size> LAST`` with the message, all in one flight (RFC 3030).

    The message travels with the envelope, so the ``sending`` commit comes first, before the
    flight. A refused MAIL or RCPT gives the verdict; the BDAT reply (503/554) that follows
    is read and the transaction RSET.
    """
    await _hook(wire, sending)  # HookRefused: nothing written, the session is clean
    if not may_send() or not wire.connected:
        raise Undelivered("not sent: the session or this run's hold on the member ended")
    data = _crlf(message.data)
    wire.write(b"".join(_envelope(message)) + b"BDAT %d LAST\r\n" % len(data) + data)
    replies = await _replies(wire, 3, timeout)
    refusal = _first_refusal(replies, (250, 250, 250))
    if refusal is not None:
        await _clean_up(wire, timeout, replies)
        raise _refused(refusal)
    if len(replies) < 3:
        wire.close()
        raise DotSent(f"no reply after BDAT LAST ({wire.why})")
    return replies[2]


def _crlf(data: bytes) -> bytes:
    return data if data.endswith(b"\r\n") else data + b"\r\n"


async def _bdat(
    wire: Wire, message: OutgoingMessage, timeout: float | None, may_send: Callable[[], bool]
) -> SMTPResponse:
    """The whole message in one ``BDAT <size> LAST`` chunk; no dot-stuffing."""
    if not may_send():
        await _clean_up(wire, timeout, [])
        raise Undelivered("not sent: this run may no longer hold the member")
    data = _crlf(message.data)
    wire.write(b"BDAT %d LAST\r\n" % len(data) + data)
    try:
        reply = await wire.reply(timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        wire.close()
        raise DotSent(f"no reply after BDAT LAST ({type(exc).__name__}: {exc})") from exc
    if reply.code != 250:
        await _clean_up(wire, timeout, [reply])
        raise _refused(reply)
    return reply


async def _body_and_dot(
    wire: Wire, message: OutgoingMessage, timeout: float | None, may_send: Callable[[], bool]
) -> SMTPResponse:
    """After 354: the message, a last look at the connection and ``may_send``, the dot."""
    try:
        wire.write(dot_stuff(message.data))
        await asyncio.sleep(0)  # let a close or reset that already arrived be noticed
    except (aiosmtplib.SMTPException, OSError) as exc:
        wire.close()
        raise Undelivered(f"connection lost before the final dot ({exc})") from exc
    if not wire.connected:
        wire.close()
        raise Undelivered("connection lost before the final dot")
    if not may_send():
        wire.close()  # no dot: the relay drops what it has of the message
        raise Undelivered("not sent: this run may no longer hold the member")
    try:
        wire.write(b".\r\n")
        reply = await wire.reply(timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        wire.close()
        raise DotSent(f"no reply after the final dot ({type(exc).__name__}: {exc})") from exc
    if reply.code != 250:
        await _clean_up(wire, timeout, [reply])
        raise _refused(reply)
    return reply
