"""One SMTP session over aiosmtplib: connect, TLS, AUTH, and one message per transaction.

One recipient per transaction, so every reply code belongs to exactly one member. The DATA
step goes through ``smtpdata`` so a lost connection is placed on the right side of the final
dot: before it the message cannot have been accepted (deferred); after it, it may have been
(unknown, never resent on its own).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from ..errors import ConfigError, HarkatError
from ..models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig
from .smtpdata import DotSent, Undelivered, send_data

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def password_for(config: SmtpConfig) -> str | None:
    """The relay password, only ever from the environment variable the campaign names."""
    if not config.username:
        return None
    if not config.password_env:
        raise ConfigError(f"smtp: username {config.username!r} needs password_env")
    password = os.environ.get(config.password_env)
    if not password:
        raise ConfigError(f"smtp.password_env: environment variable {config.password_env} is unset")
    if config.tls == "none" and config.host not in LOOPBACK:
        raise ConfigError(f"smtp: refusing to send a password in clear text to {config.host}")
    return password


def classify(code: int | None) -> Outcome:
    """4xx (and no code at all) -> deferred; 5xx -> failed."""
    if code is not None and 500 <= code < 600:
        return Outcome.FAILED
    return Outcome.DEFERRED


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """Certificates and host names verified; an extra CA file when the campaign names one."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


async def _command(client: aiosmtplib.SMTP, line: bytes) -> None:
    """One command expecting 250; addresses are validated upstream, so no re-parsing here."""
    response = await client.execute_command(line)
    if response.code != 250:
        raise aiosmtplib.SMTPResponseException(response.code, response.message)


@dataclass
class Session:
    """One worker's SMTP session, opened on first use and reopened after a drop."""

    config: SmtpConfig
    password: str | None
    client: aiosmtplib.SMTP | None = None

    async def ensure(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected:
            return self.client
        tls = self.config.tls
        client = aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.config.port,
            timeout=self.config.timeout,
            use_tls=tls == "tls",
            start_tls=tls == "starttls",  # True: STARTTLS or an error, never a silent downgrade
            tls_context=tls_context(self.config) if tls != "none" else None,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:  # commands below go out raw: greet first
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if self.config.username and self.password is not None:
            # One mechanism, not aiosmtplib's try-them-all login(): a refusal must read as
            # the server's 535, not as a later mechanism's timeout.
            methods = client.server_auth_methods
            if "plain" in methods:
                await client.auth_plain(self.config.username, self.password)
            elif "login" in methods:
                await client.auth_login(self.config.username, self.password)
            else:
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

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """RSET after a refused transaction; a session that cannot is dropped."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self.drop(polite=False)

    async def send(
        self,
        message: OutgoingMessage,
        on_sending: Callable[[OutgoingMessage], Awaitable[None]],
        may_send: Callable[[], bool] = lambda: True,
    ) -> DeliveryResult:
        """One transaction; the verdict for this message (session errors are raised)."""
        client = await self.ensure()
        try:
            await _command(client, b"MAIL FROM:<" + message.sender.encode() + b">")
            await _command(client, b"RCPT TO:<" + message.recipient.encode() + b">")
            try:
                await on_sending(message)  # committed before DATA
            except HarkatError as exc:  # the send log refused or failed: no DATA without it
                await self._reset(client)
                return DeliveryResult(message.key, Outcome.LOST, None, str(exc))
            response = await send_data(client, message.data, self.config.timeout, may_send)
            return DeliveryResult(message.key, Outcome.SENT, response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing this session: no RSET, reconnect
                await self.drop(polite=False)
            else:
                await self._reset(client)
            return DeliveryResult(message.key, classify(exc.code), exc.code, exc.message)
        except DotSent as exc:
            await self.drop(polite=False)
            return DeliveryResult(message.key, Outcome.UNKNOWN, None, str(exc))
        except (Undelivered, aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.drop(polite=False)
            return DeliveryResult(
                message.key, Outcome.DEFERRED, None, f"{type(exc).__name__}: {exc}"
            )
