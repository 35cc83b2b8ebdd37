"""Async SMTP delivery: a pool of reused connections, a shared rate limit, reply classification.

aiosmtplib stays inside this module. One recipient per transaction, so every reply code
belongs to exactly one member.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from .errors import ConfigError
from .models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_CONNECT_FAILURES = 3


class RateLimiter:
    """One limiter shared by every connection: at most ``rate`` messages per second."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next message may start."""
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def password_for(config: SmtpConfig) -> str | None:
    """The relay password, only ever from the environment variable the campaign names."""
    if not config.username:
        return None
    if not config.password_env:
        raise ConfigError(f"smtp: username {config.username!r} needs password_env")
    password = os.environ.get(config.password_env)
    if not password:
        raise ConfigError(f"smtp.password_env: environment variable {config.password_env} is unset")
    if config.tls == "none" and config.host not in _LOOPBACK:
        raise ConfigError(f"smtp: refusing to send a password in clear text to {config.host}")
    return password


def classify(code: int | None) -> Outcome:
    """4xx (and no code at all) -> deferred; 5xx -> failed."""
    if code is not None and 500 <= code < 600:
        return Outcome.FAILED
    return Outcome.DEFERRED


@dataclass
class _Connection:
    """One worker's SMTP session, opened on first use and reopened after a drop."""

    config: SmtpConfig
    password: str | None
    client: aiosmtplib.SMTP | None = None

    async def ensure(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected:
            return self.client
        context = ssl.create_default_context()  # certificates and host names verified
        client = aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.config.port,
            timeout=self.config.timeout,
            use_tls=self.config.tls == "tls",
            start_tls=self.config.tls == "starttls",
            tls_context=context if self.config.tls != "none" else None,
            validate_certs=self.config.tls != "none",
        )
        await client.connect()
        if self.config.username and self.password is not None:
            await client.login(self.config.username, self.password)
        self.client = client
        return client

    async def drop(self, polite: bool) -> None:
        """Close the session; QUIT only when the server is still talking to us."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if polite and client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=2)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        client.close()


async def _send_one(
    conn: _Connection, message: OutgoingMessage, on_sending: Callable[[OutgoingMessage], None]
) -> DeliveryResult:
    client = await conn.ensure()
    in_data = False
    try:
        await client.mail(message.sender)
        await client.rcpt(message.recipient)
        on_sending(message)
        in_data = True
        response = await client.data(message.data)
        return DeliveryResult(message.key, Outcome.SENT, response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code == 421:  # the server is closing this session: no RSET, reconnect next time
            await conn.drop(polite=False)
        else:
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, OSError):
                await conn.drop(polite=False)
        return DeliveryResult(message.key, classify(exc.code), exc.code, exc.message)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        await conn.drop(polite=False)
        # After the message went out, a lost reply means it may have been delivered.
        outcome = Outcome.UNKNOWN if in_data else Outcome.DEFERRED
        return DeliveryResult(message.key, outcome, None, f"{type(exc).__name__}: {exc}")


async def deliver(
    config: SmtpConfig,
    queue: asyncio.Queue[OutgoingMessage | None],
    on_sending: Callable[[OutgoingMessage], None],
    on_result: Callable[[DeliveryResult], None],
) -> None:
    """Drain ``queue`` over ``config.connections`` reused sessions until it yields None.

    ``on_sending`` runs after RCPT is accepted and before DATA; ``on_result`` once per message.
    """
    password = password_for(config)
    limiter = RateLimiter(config.rate)

    async def worker() -> None:
        conn = _Connection(config, password)
        connect_failures = 0
        try:
            while True:
                message = await queue.get()
                if message is None:
                    queue.put_nowait(None)  # let the other workers see the end too
                    return
                await limiter.wait()
                try:
                    result = await _send_one(conn, message, on_sending)
                    connect_failures = 0
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    connect_failures += 1
                    reason = f"cannot connect to {config.describe()}: {exc}"
                    # A session that cannot be opened says nothing about this recipient.
                    code = getattr(exc, "code", None)
                    result = DeliveryResult(message.key, Outcome.DEFERRED, code, reason)
                on_result(result)
                if connect_failures >= MAX_CONNECT_FAILURES:
                    await _drain(queue, on_result, result.reply)
                    return
        finally:
            await conn.drop(polite=True)

    await asyncio.gather(*(worker() for _ in range(config.connections)))


async def _drain(
    queue: asyncio.Queue[OutgoingMessage | None],
    on_result: Callable[[DeliveryResult], None],
    reply: str,
) -> None:
    """The relay is unreachable: defer everything left instead of hammering it."""
    while True:
        message = await queue.get()
        if message is None:
            queue.put_nowait(None)
            return
        on_result(DeliveryResult(message.key, Outcome.DEFERRED, None, reply))
