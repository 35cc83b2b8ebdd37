"""The mail transaction on a ``Wire``: lock-step, pipelined (RFC 2920), chunked (RFC 3030).

A lost connection is placed on the right side of the final dot (or of ``BDAT ... LAST``):
before it the relay cannot have accepted the message (``Undelivered``); after it, it may have
(``DotSent``, never resent on its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiosmtplib
from aiosmtplib import SMTPResponse

from ..errors import HarkatError
from ..models import OutgoingMessage
from .wire import Offer, Turn, Wire


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
    turn: Turn,
) -> SMTPResponse:
    """One message to one recipient; the relay's 250, or an exception saying what happened.

    ``SMTPResponseException``: the relay refused (its code; the session was RSET or cut).
    ``HookRefused``: the send log refused. ``Undelivered`` / ``DotSent``: the connection was
    lost before / after the point where the relay could accept the message. ``sending`` is
    awaited (committed) before any byte of the message leaves; ``may_send`` is asked before
    the transaction and again right before the message data.

    ``turn`` orders transactions pipelined on one session: the caller lets this one write
    once the previous has written its last byte; its replies are read after the previous
    one's. With PIPELINING and DATA a transaction lets the next one write right after its
    own final dot (RFC 2920 allows the message content to be followed by commands in the
    same group): whatever the reply to the dot, it ends the transaction, so nothing (no
    RSET) is ever written between the dot and the next envelope. After BDAT LAST the next
    transaction waits for the reply: relays differ on what a refused last chunk leaves.
    """
    if not may_send():
        raise Undelivered("not sent: this run may no longer hold the member")
    if offer.pipelining and offer.chunking:
        return await _pipelined_bdat(wire, message, timeout, sending, may_send, turn)
    if offer.pipelining:
        return await _pipelined_data(wire, message, timeout, sending, may_send, turn)
    await turn.reading()  # lock-step: the previous transaction is over
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
    return await _body_and_dot(wire, message, timeout, may_send, None)


async def _pipelined_data(
    wire: Wire,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
    turn: Turn,
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
        await turn.reading()
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
    return await _body_and_dot(wire, message, timeout, may_send, turn)


async def _pipelined_bdat(
    wire: Wire,
    message: OutgoingMessage,
    timeout: float | None,
    sending: Callable[[], Awaitable[None]],
    may_send: Callable[[], bool],
    turn: Turn,
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
    await turn.reading()
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
    wire: Wire,
    message: OutgoingMessage,
    timeout: float | None,
    may_send: Callable[[], bool],
    turn: Turn | None,
) -> SMTPResponse:
    """After 354: the message, a last look at the connection and ``may_send``, the dot.

    With a ``turn`` the next transaction may write its envelope right behind the dot.
    """
    try:
        wire.write(dot_stuff(message.data))
        closed = await wire.settle()
    except (aiosmtplib.SMTPException, OSError) as exc:
        wire.caution.careful = True
        wire.close()
        raise Undelivered(f"connection lost before the final dot ({exc})") from exc
    if closed:  # a relay that hung up after 354 has accepted nothing
        wire.caution.careful = True
        wire.close()
        raise Undelivered("connection lost before the final dot")
    if not may_send():
        wire.close()  # no dot: the relay drops what it has of the message
        raise Undelivered("not sent: this run may no longer hold the member")
    try:
        wire.write(b".\r\n")
        if turn is not None:
            turn.release()
        reply = await wire.reply(timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        wire.caution.careful = True
        wire.close()
        raise DotSent(f"no reply after the final dot ({type(exc).__name__}: {exc})") from exc
    if reply.code != 250:
        if reply.code == 421:
            wire.close()
        raise _refused(reply)  # the reply to the dot ends the transaction: no RSET
    return reply
