"""The split DATA step: the one place that drives aiosmtplib's protocol object directly.

aiosmtplib's ``SMTP.data()`` writes the message and the final dot in one go, so a connection
lost during it cannot be placed on either side of the dot. Here the body is written, the
connection checked, then the dot written and its reply read: a loss before the dot means the
relay cannot have accepted the message; a loss after it means it may have. This uses
``SMTP.protocol``, ``SMTPProtocol.write`` and ``SMTPProtocol.read_response``: below the
command API, so pyproject.toml bounds aiosmtplib's version and tests/delivery pins them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiosmtplib


class Undelivered(Exception):
    """The session broke before the final dot: the relay cannot have accepted the message."""


class DotSent(Exception):
    """The session broke after the final dot, before the reply: the message may have arrived."""


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 transparency, ending in CRLF; the data starts with a header, not a dot."""
    body = data.replace(b"\n.", b"\n..") if b"\n." in data else data
    return body if body.endswith(b"\r\n") else body + b"\r\n"


async def send_data(
    client: aiosmtplib.SMTP,
    data: bytes,
    timeout: float | None,
    may_send: Callable[[], bool] = lambda: True,
) -> aiosmtplib.SMTPResponse:
    """DATA, the message, the final dot; the 250 reply, or an exception saying which side.

    A reply other than 354 or 250 raises ``SMTPDataError`` with the relay's code. ``may_send``
    is asked before DATA and again before the dot (a reply can take long): when it says no,
    the session is cut before the dot, so the relay discards the message (``Undelivered``).
    """
    if not may_send():
        raise Undelivered("not sent: this run may no longer hold the member")
    start = await client.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    if protocol is None:
        raise Undelivered("connection lost after DATA")
    try:
        protocol.write(dot_stuff(data))
        # Let a close or reset that came with the 354 be noticed before the dot: a relay that
        # hung up then cannot have the message. (One turn reads it; the second handles it.)
        for _ in range(2):
            await asyncio.sleep(0)
            if not client.is_connected:
                raise Undelivered("connection lost after 354, before the final dot")
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise Undelivered(f"connection lost before the final dot ({exc})") from exc
    if not may_send():
        client.close()  # no dot: the relay drops what it has of the message
        raise Undelivered("not sent: this run may no longer hold the member")
    try:
        protocol.write(b".\r\n")
        response = await protocol.read_response(timeout=timeout)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            raise
        raise DotSent(f"no reply after the final dot ({type(exc).__name__}: {exc})") from exc
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response
