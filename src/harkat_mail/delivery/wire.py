"""The negotiated connection under the transactions: replies in order, several in flight.

aiosmtplib opens and negotiates the session (TLS, EHLO, AUTH). Its reply reader expects one
reply per command, read before the next command is written: replies that arrive together
are lost. For RFC 2920 pipelining the transactions therefore run on ``Wire``, a protocol of
our own that takes over the negotiated transport (``SMTP.protocol.transport`` and
``transport.set_protocol``: below aiosmtplib's command API, so pyproject.toml bounds its
version and tests/delivery pins the behaviour) and queues every reply in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections import deque
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse

SETTLE = 0.005  # seconds a cautious final dot waits for a close that may be on its way
MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP: the session is cut
_REPLY_LINE = re.compile(rb"(\d{3})([ -]?)(.*)")


class Wire(asyncio.Protocol):
    """A negotiated SMTP connection whose replies queue up in order, several in flight."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.replies: deque[SMTPResponse] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False
        self.why = ""  # why the last reply did not come
        self.caution = Caution()  # the session's, shared by the sessions to one relay
        self.hangup: asyncio.Future[None] = asyncio.get_running_loop().create_future()

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

    def hung_up(self) -> bool:
        """Whether the relay has closed or reset the connection, as far as our kernel knows.

        The event loop learns of a close only on its next turn; a peek at the socket (no read,
        no wait) sees a FIN or reset that has already arrived. Over TLS a close preceded by
        close_notify shows as data, not as a close: only the loop's own view then counts.
        """
        if not self.connected:
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as raw:
                return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # nothing waiting: still open
        except OSError:
            return True  # reset

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
        self._hung_up()
        return False  # the relay hung up: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._hung_up()
        self._wake()

    def _hung_up(self) -> None:
        if not self.hangup.done():
            self.hangup.set_result(None)

    async def settle(self) -> bool:
        """Whether the relay hung up, looking a few loop turns on (cheap), and waiting up to
        ``SETTLE`` for a close on its way once this relay has hung up around a final dot."""
        for _ in range(3):
            await asyncio.sleep(0)  # a close or reset that already arrived is read meanwhile
        if self.caution.careful and not self.hung_up():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.hangup), SETTLE)
        return self.hung_up()

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


@dataclass
class Caution:
    """Shared by the sessions to one relay: set once a session was lost around a final dot.

    Without a delay, a close that follows the 354 by a few microseconds can reach us after the
    dot has left (the message then counts as possibly delivered). Once a relay has hung up
    there, each final dot waits up to ``SETTLE`` for such a close (at once if it comes).
    """

    careful: bool = False


@dataclass(frozen=True)
class Offer:
    """What the relay advertised in its EHLO reply that changes the transaction."""

    pipelining: bool = False
    chunking: bool = False


class Turn:
    """One transaction's place among those pipelined on a session, in the order they began.

    A transaction may write once the one before it has written its last byte (the final dot,
    or BDAT LAST with the message), and read once the one before it has read its last reply.
    Calls made one after the other never wait.
    """

    def __init__(self, before: Turn | None) -> None:
        loop = asyncio.get_running_loop()
        self.before = before
        self.wrote: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()

    async def writing(self) -> None:
        if self.before is not None:
            await asyncio.shield(self.before.wrote)

    async def reading(self) -> None:
        if self.before is not None:
            await asyncio.shield(self.before.ended)
            self.before = None  # nothing more to wait for: let the chain go

    def release(self) -> None:
        """Our last byte is written: the next transaction may write behind it."""
        if not self.wrote.done():
            self.wrote.set_result(None)

    def end(self) -> None:
        self.release()
        self.before = None
        if not self.ended.done():
            self.ended.set_result(None)
