"""Async SMTP delivery: reused connections, one shared rate limit, retries, and honest verdicts.

aiosmtplib stays inside this module. One recipient per transaction, so every reply code
belongs to exactly one member. DATA is sent in two steps so a lost connection is placed on
the right side of the final dot: before it the message cannot have been accepted (deferred);
after it, it may have been (unknown, never resent on its own).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import aiosmtplib

from .errors import ConfigError, DeliveryError
from .models import DeliveryResult, Outcome, OutgoingMessage, RetryPolicy, SmtpConfig
from .ratelimit import CapReached, RateLimiter

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_CONNECT_FAILURES = 3
THROTTLE_CODES = (421, 450, 451, 452, 454)
_THROTTLE_TEXT = re.compile(r"rate|too many|throttl|slow down|try again later", re.I)
THROTTLE_STREAK = 3  # this many 4xx in a row across connections reads as throttling
CALM_STREAK = 50  # deliveries in a row after which a slowed-down run speeds up again


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


def is_throttling(result: DeliveryResult) -> bool:
    """A 4xx whose text says the relay wants us to send less."""
    return result.code in THROTTLE_CODES and bool(_THROTTLE_TEXT.search(result.reply))


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """Certificates and host names verified; an extra CA file when the campaign names one."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


async def _command(client: aiosmtplib.SMTP, line: bytes) -> None:
    """One command expecting 250; addresses are validated upstream, so no re-parsing here."""
    response = await client.execute_command(line)
    if response.code != 250:
        raise aiosmtplib.SMTPResponseException(response.code, response.message)


class _Undelivered(Exception):
    """The session broke before the final dot: the message was not accepted."""


@dataclass
class _Session:
    """One worker's SMTP session, opened on first use and reopened after a drop."""

    config: SmtpConfig
    password: str | None
    client: aiosmtplib.SMTP | None = None
    dot_sent: bool = False

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

    async def _data(self, client: aiosmtplib.SMTP, data: bytes) -> aiosmtplib.SMTPResponse:
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = client.protocol
        if protocol is None:
            raise _Undelivered("connection lost after DATA")
        # Dot-stuffing; the data starts with a header, so only a "." after a line end counts.
        body = data.replace(b"\n.", b"\n..") if b"\n." in data else data
        protocol.write(body if body.endswith(b"\r\n") else body + b"\r\n")
        await asyncio.sleep(0)  # let a close or reset that already arrived be noticed
        if not client.is_connected:
            raise _Undelivered("connection lost before the final dot")
        # From the dot on, a lost reply means the message may have been accepted.
        self.dot_sent = True
        protocol.write(b".\r\n")
        response = await protocol.read_response(timeout=self.config.timeout)
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response

    async def send(
        self, message: OutgoingMessage, on_sending: Callable[[OutgoingMessage], Awaitable[None]]
    ) -> DeliveryResult:
        client = await self.ensure()
        self.dot_sent = False
        try:
            await _command(client, b"MAIL FROM:<" + message.sender.encode() + b">")
            await _command(client, b"RCPT TO:<" + message.recipient.encode() + b">")
            await on_sending(message)  # committed before DATA
            response = await self._data(client, message.data)
            return DeliveryResult(message.key, Outcome.SENT, response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing this session: no RSET, reconnect
                await self.drop(polite=False)
            else:
                try:
                    await client.rset()
                except (aiosmtplib.SMTPException, OSError):
                    await self.drop(polite=False)
            return DeliveryResult(message.key, classify(exc.code), exc.code, exc.message)
        except (_Undelivered, aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.drop(polite=False)
            if self.dot_sent:
                return DeliveryResult(
                    message.key,
                    Outcome.UNKNOWN,
                    None,
                    f"no reply after the final dot ({type(exc).__name__}: {exc})",
                )
            return DeliveryResult(
                message.key, Outcome.DEFERRED, None, f"{type(exc).__name__}: {exc}"
            )


@dataclass
class DeliveryHooks:
    """How delivery reports to its caller (the pipeline owns the send log)."""

    sending: Callable[[OutgoingMessage], Awaitable[None]]
    result: Callable[[DeliveryResult, float | None], None]  # verdict, next try (deferred)
    notice: Callable[[str], None] = lambda _: None


@dataclass
class _Run:
    """State shared by the workers of one ``deliver`` call."""

    queue: asyncio.Queue[OutgoingMessage | None]
    slots: asyncio.Semaphore
    outstanding: int = 0
    fed_all: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    retries: set[asyncio.TimerHandle] = field(default_factory=set)
    streak: int = 0
    calm: int = 0
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    stop_reason: str = ""

    def finish_one(self) -> None:
        self.outstanding -= 1
        self.slots.release()
        if self.fed_all and self.outstanding == 0:
            self.done.set()


async def deliver(
    config: SmtpConfig,
    policy: RetryPolicy,
    messages: AsyncIterator[OutgoingMessage],
    hooks: DeliveryHooks,
    stop: asyncio.Event | None = None,
    prior_attempts: Mapping[str, int] | None = None,
    recent_sends: Iterable[float] = (),
) -> str:
    """Send every message over ``config.connections`` reused sessions; return why it stopped.

    Deferred messages are retried in this run after the policy's delays until their attempts
    are used up (then failed). Throttling replies slow everyone down and do not use up an
    attempt. Setting ``stop`` ends the run after the messages in progress. The return value is
    empty when the run went through its list, else the reason it stopped early.
    """
    password = password_for(config)
    stop = stop or asyncio.Event()
    limiter = RateLimiter(config.rate, config.per_hour, config.per_day, recent_sends)
    run = _Run(asyncio.Queue(), asyncio.Semaphore(config.connections * 4))
    attempts: dict[str, int] = dict(prior_attempts or {})

    def retry_later(message: OutgoingMessage, delay: float) -> None:
        def put() -> None:
            run.retries.discard(handle)
            run.queue.put_nowait(message)

        handle = asyncio.get_running_loop().call_later(delay, put)
        run.retries.add(handle)

    def settle(message: OutgoingMessage, result: DeliveryResult) -> None:
        """Record a verdict; schedule a retry or close the message's slot."""
        throttled = result.outcome is Outcome.DEFERRED and (
            is_throttling(result) or run.streak + 1 >= THROTTLE_STREAK
        )
        run.streak = run.streak + 1 if result.outcome is Outcome.DEFERRED else 0
        if result.outcome is Outcome.SENT:
            run.sent += 1
            run.calm += 1
            if run.calm >= CALM_STREAK:
                run.calm = 0
                limiter.speed_up()
        if throttled:
            run.calm = 0
            elapsed = max(time.monotonic() - run.started, 0.001)
            rate = limiter.slow_down(run.sent / elapsed)
            if rate is not None:
                hooks.notice(
                    f"the relay is pushing back ({result.code} {result.reply.strip()[:60]}): "
                    f"slowing down to {rate:.1f} messages/s"
                )
            run.streak = 0
        else:
            attempts[message.key] = attempts.get(message.key, 0) + 1
        retry = result.outcome is Outcome.DEFERRED and not stop.is_set()
        if retry and attempts.get(message.key, 0) >= policy.attempts:
            result = DeliveryResult(
                message.key,
                Outcome.FAILED,
                result.code,
                f"gave up after {policy.attempts} attempts: {result.reply}",
            )
            retry = False
        delay = 1.0 if throttled else policy.delay(attempts.get(message.key, 1))
        hooks.result(result, time.time() + delay if result.outcome is Outcome.DEFERRED else None)
        if retry:
            retry_later(message, delay)
        else:
            run.finish_one()

    async def feed() -> None:
        try:
            async for message in messages:
                await run.slots.acquire()
                if stop.is_set():
                    run.slots.release()
                    break
                run.outstanding += 1
                run.queue.put_nowait(message)
        finally:
            run.fed_all = True
            if run.outstanding == 0:
                run.done.set()

    async def worker() -> None:
        session = _Session(config, password)
        connect_failures = 0
        try:
            while True:
                message = await run.queue.get()
                if message is None:
                    return
                if stop.is_set():  # not started: it stays pending in the log
                    run.finish_one()
                    continue
                try:
                    await limiter.wait()
                except CapReached as exc:
                    run.stop_reason = str(exc)
                    stop.set()
                    run.finish_one()
                    continue
                try:
                    result = await session.send(message, hooks.sending)
                    connect_failures = 0
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    connect_failures += 1
                    code = getattr(exc, "code", None)
                    reason = f"cannot open a session with {config.describe()}: {exc}"
                    if connect_failures >= MAX_CONNECT_FAILURES or _is_fatal(exc):
                        run.stop_reason = reason
                        stop.set()
                    # A session that cannot be opened says nothing about this recipient.
                    result = DeliveryResult(message.key, Outcome.DEFERRED, code, reason)
                settle(message, result)
        finally:
            await session.drop(polite=True)

    async def stopper() -> None:
        await stop.wait()
        for handle in list(run.retries):  # waiting retries stay deferred in the log
            handle.cancel()
            run.retries.discard(handle)
            run.finish_one()

    workers = [asyncio.create_task(worker()) for _ in range(config.connections)]
    feeder = asyncio.create_task(feed())
    watcher = asyncio.create_task(stopper())
    await run.done.wait()
    for _ in workers:
        run.queue.put_nowait(None)
    await asyncio.gather(*workers)
    watcher.cancel()
    if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
        raise feeder.exception()  # type: ignore[misc]  # rendering broke: say so, loudly
    feeder.cancel()
    if run.stop_reason and "cannot open a session" in run.stop_reason and run.sent == 0:
        raise DeliveryError(f"{run.stop_reason}; nothing was sent")
    return run.stop_reason


def _is_fatal(exc: BaseException) -> bool:
    """Errors that retrying cannot fix: TLS refused or unverifiable, authentication refused."""
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPAuthenticationError):
        return True
    if isinstance(exc.__cause__, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return True  # implicit TLS: aiosmtplib wraps the handshake failure
    return isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc)
