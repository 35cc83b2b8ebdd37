"""One SMTP session: aiosmtplib connects (TLS, EHLO, AUTH), ``smtpdata`` runs the transactions.

One recipient per transaction, so every reply code belongs to exactly one member, also when
MAIL, RCPT and DATA travel pipelined. ``smtpdata`` places a lost connection on the right side
of the final dot: before it the message cannot have been accepted (deferred); after it, it
may have been (unknown, never resent on its own).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib

from ..errors import ConfigError, RelayUnavailable
from ..models import DeliveryResult, Outcome, OutgoingMessage, SmtpConfig
from .oauth import access_token, check_token_source, xoauth2_response
from .smtpdata import DotSent, HookRefused, Undelivered, transaction
from .wire import Caution, Offer, Turn, Wire

LOOPBACK = ("127.0.0.1", "::1", "localhost")
SESSION_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


def password_for(config: SmtpConfig) -> str | None:
    """The relay password, only ever from the environment variable the campaign names.

    With ``auth: xoauth2`` there is no password (None): the token source is checked instead.
    """
    if config.auth == "xoauth2":
        if config.tls == "none" and config.host not in LOOPBACK:
            raise ConfigError(
                f"smtp: refusing to send an access token in clear text to {config.host}"
            )
        check_token_source(config)
        return None
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


@dataclass
class Session:
    """One worker's SMTP session, opened on first use and reopened after a drop.

    ``send`` calls may overlap (see ``send``); ``ensure`` and ``drop`` are the caller's to
    order, as a worker does when it opens, uses and closes its session.
    """

    config: SmtpConfig
    password: str | None
    client: aiosmtplib.SMTP | None = None
    wire: Wire | None = None  # the client's connection once transactions run on it
    offer: Offer = field(default_factory=Offer)
    last: Turn | None = None  # the latest transaction begun on this session
    caution: Caution = field(default_factory=Caution)  # shared by the sessions to one relay

    async def ensure(self) -> aiosmtplib.SMTP:
        """The negotiated session (EHLO, TLS, AUTH done), opened if need be."""
        if self.client is not None and (
            self.wire.connected if self.wire is not None else self.client.is_connected
        ):
            return self.client
        await self.drop(polite=False)
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
        try:
            await self._greet_and_log_in(client)
        except BaseException:
            client.close()  # a session that failed half-way is not left open
            raise
        self.offer = Offer(
            pipelining=client.supports_extension("pipelining"),
            chunking=client.supports_extension("chunking"),
        )
        self.client = client
        return client

    async def _greet_and_log_in(self, client: aiosmtplib.SMTP) -> None:
        """EHLO (HELO if refused), then AUTH as the campaign says."""
        if client.is_ehlo_or_helo_needed:  # commands below go out raw: greet first
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if self.config.auth == "xoauth2":
            await self._xoauth2(client)
        elif self.config.username and self.password is not None:
            # One mechanism, not aiosmtplib's try-them-all login(): a refusal must read as
            # the server's 535, not as a later mechanism's timeout.
            methods = client.server_auth_methods
            if "plain" in methods:
                await client.auth_plain(self.config.username, self.password)
            elif "login" in methods:
                await client.auth_login(self.config.username, self.password)
            else:
                await client.login(self.config.username, self.password)

    async def _xoauth2(self, client: aiosmtplib.SMTP) -> None:
        """AUTH XOAUTH2 with a fresh token; a refusal stops the run (exit 3), token unsaid."""
        where = f"{self.config.host}:{self.config.port}"
        user = self.config.username or ""
        if "xoauth2" not in client.server_auth_methods:
            client.close()
            raise RelayUnavailable(f"{where} does not offer AUTH XOAUTH2; check smtp.host")
        token = await access_token(self.config)
        reply = await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2_response(user, token))
        if reply.code == 334:  # the error details, base64 JSON: answered empty to get the code
            reply = await client.execute_command(b"")
        if reply.code != 235:
            client.close()
            raise RelayUnavailable(
                f"{where} refused the XOAUTH2 access token for {user} "
                f"({reply.code} {reply.message.splitlines()[0][:80] if reply.message else ''})"
                "; is the token current and SMTP AUTH allowed for the mailbox?"
            )

    async def drop(self, polite: bool) -> None:
        """Close the session; QUIT only when the server is still talking to us."""
        client, self.client = self.client, None
        wire, self.wire = self.wire, None
        if client is None:
            return
        try:
            if polite and wire is not None and wire.connected:
                await wire.command(b"QUIT", timeout=2)
            elif polite and wire is None and client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=2)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        if wire is not None:
            wire.close()
        client.close()

    async def send(
        self,
        message: OutgoingMessage,
        on_sending: Callable[[OutgoingMessage], Awaitable[None]],
        may_send: Callable[[], bool] = lambda: True,
    ) -> DeliveryResult:
        """One transaction; the verdict for this message (session errors are raised).

        ``on_sending`` is awaited (the send log commits the row) before any byte of the
        message leaves; ``may_send`` is asked before the transaction and right before the
        message data. With PIPELINING the envelope and DATA go out in one flight; with
        CHUNKING the message goes as one ``BDAT ... LAST``. Calls may overlap: with
        PIPELINING a second call's envelope goes out right behind the first's final dot,
        and each reply still reaches its own call.
        """
        turn = self.last = Turn(self.last)
        try:
            await turn.writing()
            client = await self.ensure()
            if self.wire is None:
                self.wire = Wire.take_over(client)
                self.wire.caution = self.caution
            return await self._transaction(self.wire, message, on_sending, may_send, turn)
        finally:
            turn.end()

    async def _transaction(
        self,
        wire: Wire,
        message: OutgoingMessage,
        on_sending: Callable[[OutgoingMessage], Awaitable[None]],
        may_send: Callable[[], bool],
        turn: Turn,
    ) -> DeliveryResult:
        key = message.key
        try:
            response = await transaction(
                wire,
                self.offer,
                message,
                self.config.timeout,
                lambda: on_sending(message),
                may_send,
                turn,
            )
            return DeliveryResult(key, Outcome.SENT, response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._after(wire)  # 421, or a refused group that had to be cut
            return DeliveryResult(key, classify(exc.code), exc.code, exc.message)
        except HookRefused as exc:  # the send log refused or failed: nothing was sent
            await self._after(wire)
            return DeliveryResult(key, Outcome.LOST, None, str(exc))
        except DotSent as exc:
            await self._after(wire)
            return DeliveryResult(key, Outcome.UNKNOWN, None, str(exc))
        except (Undelivered, aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            wire.close()
            await self._after(wire)
            return DeliveryResult(key, Outcome.DEFERRED, None, f"{type(exc).__name__}: {exc}")

    async def _after(self, wire: Wire) -> None:
        """Drop the session if ``wire`` died, unless a later call already opened a new one."""
        if not wire.connected and self.wire is wire:
            await self.drop(polite=False)
