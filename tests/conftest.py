"""Real SMTP servers on 127.0.0.1 (aiosmtpd), some of them misbehaving on purpose."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from harkat_mail.delivery import RelayThread

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Delivered:
    """One message a test server accepted: its envelope and the parsed bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """Accepts everything and keeps it; ``rules`` make it misbehave per recipient on purpose.

    A rule maps a recipient substring to ``(stage, action)`` or ``(stage, action, times)``.
    Stages: ``mail``, ``rcpt``, ``data-cmd`` (the DATA command, before 354) and ``data`` (the
    reply after the final dot). Actions: a reply such as ``"451 4.3.0 busy"``, ``"drop"``
    (close the connection), ``"slow:SECONDS"`` (reply late), or ``"drop-after-dot"`` (keep
    the message, never answer). ``times`` limits a rule to its first uses. At ``data-cmd``,
    ``"354-drop"`` answers 354 and hangs up before any message data.
    ``throttle_first`` answers the first N MAIL commands with a rate-limit 451; ``max_rate``
    answers MAIL like Amazon SES past that many accepted messages in the last second;
    ``max_sessions`` greets sessions beyond that many at once with a 421.
    """

    rules: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    messages: list[Delivered] = field(default_factory=list)
    connections: int = 0
    rsets: int = 0
    rcpt_calls: Counter[str] = field(default_factory=Counter)
    throttle_first: int = 0
    max_rate: float | None = None
    max_sessions: int | None = None
    refuse_reconnects: int = 0  # sessions after the first greeted with a 421, this many times
    open_sessions: int = 0
    accepted_at: deque[float] = field(default_factory=deque)
    rcpt_log: list[str] = field(default_factory=list)  # every RCPT, in order
    mail_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def action(self, address: str, stage: str) -> str | None:
        for needle, rule in self.rules.items():
            at, action, *limit = rule
            if needle in address.lower() and at == stage:
                with self.lock:
                    if limit:
                        if limit[0] <= 0:
                            return None
                        self.rules[needle] = (at, action, limit[0] - 1)
                return action
        return None

    def copies(self, address: str) -> int:
        """How many messages this recipient has received."""
        return sum(1 for m in self.messages if address in m.rcpt_tos)

    async def _act(self, server: SMTPServer, action: str | None) -> str | None:
        if action is None:
            return None
        if action.startswith("slow:"):
            await asyncio.sleep(float(action.split(":")[1]))
            return None
        if action == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "421 closed"
        return action

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.lock:
            self.mail_calls += 1
            throttled = self.mail_calls <= self.throttle_first
        if throttled:
            return "451 4.7.1 Rate limit exceeded, slow down"
        if self.max_rate is not None:
            with self.lock:
                now = time.monotonic()
                while self.accepted_at and self.accepted_at[0] < now - 1.0:
                    self.accepted_at.popleft()
                if len(self.accepted_at) >= self.max_rate:
                    return "454 4.7.0 Throttling failure: Maximum sending rate exceeded."
                self.accepted_at.append(now)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            self.rcpt_calls[address] += 1
            self.rcpt_log.append(address)
        reply = await self._act(server, self.action(address, "rcpt"))
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        action = self.action(envelope.rcpt_tos[0], "data")
        delivered = Delivered(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or envelope.content or b"",
        )
        if action == "drop-after-dot":
            with self.lock:  # it arrived, but the client never hears so
                self.messages.append(delivered)
            assert server.transport is not None
            server.transport.abort()
            return "250 never seen"
        reply = await self._act(server, action)
        if reply:
            return reply
        with self.lock:
            self.messages.append(delivered)
        return "250 2.0.0 queued"


class CountingSMTP(SMTPServer):
    """aiosmtpd's server, counting connections and RSETs, and able to drop at DATA."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler = self.event_handler
        with handler.lock:
            handler.connections += 1
            handler.open_sessions += 1
            full = handler.max_sessions is not None and handler.open_sessions > handler.max_sessions
            if handler.connections > 1 and handler.refuse_reconnects > 0:
                handler.refuse_reconnects -= 1
                full = True
        self.rejected = full
        if full:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        with self.event_handler.lock:
            self.event_handler.open_sessions -= 1
        if not self.rejected:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.rejected:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return False if self.rejected else super().eof_received()

    async def smtp_RSET(self, arg: str) -> None:
        with self.event_handler.lock:
            self.event_handler.rsets += 1
        await super().smtp_RSET(arg)

    async def smtp_DATA(self, arg: str) -> None:
        rcpts = self.envelope.rcpt_tos if self.envelope else []
        action = self.event_handler.action(rcpts[0], "data-cmd") if rcpts else None
        if action == "drop":
            assert self.transport is not None
            self.transport.abort()
            return
        if action == "354-drop":  # the reply and the close leave back to back, no loop turn between
            assert self.transport is not None
            fd = self.transport.get_extra_info("socket").fileno()
            with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as raw:
                # MSG_MORE: the 354 and the FIN leave in one segment, as over a long link.
                raw.send(b"354 End data with <CR><LF>.<CR><LF>\r\n", socket.MSG_MORE)
                raw.shutdown(socket.SHUT_RDWR)
            self.transport.close()
            return
        if action:
            await self.push(action)
            return
        await super().smtp_DATA(arg)


class TestServer(RelayThread):
    """A RelayThread whose sessions count connections and RSETs."""

    def _factory(self) -> SMTPServer:
        return CountingSMTP(self.handler, loop=self.loop, hostname="test.local", **self.smtp_kwargs)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[TestServer, RecordingHandler]]]:
    """Start recording servers on free loopback ports; stop them after the test."""
    started: list[TestServer] = []

    def start(
        throttle_first: int = 0, smtp: dict[str, Any] | None = None, **rules: tuple[Any, ...]
    ) -> tuple[TestServer, RecordingHandler]:
        handler = RecordingHandler(rules=dict(rules), throttle_first=throttle_first)
        options = dict(smtp or {})
        server = TestServer(handler, ssl=options.pop("ssl", None), **options).start()
        started.append(server)
        return server, handler

    yield start
    for server in started:
        server.stop()


UNSUBSCRIBE_SECRET = "test-unsubscribe-secret-0123456789"


@pytest.fixture(autouse=True)
def unsubscribe_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the unsubscribe secret set, as a real send requires."""
    monkeypatch.setenv("HARKAT_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    return UNSUBSCRIBE_SECRET


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the sample campaign, templates and list; returns the campaign YAML path."""
    for folder in ("campaigns", "templates", "lists"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path / "campaigns" / "sept2018.yaml"


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- PostgreSQL: the session's own throwaway cluster (tests/pgserver.py) ---------------------
# Kept together at the end of this file, imports included.

import os  # noqa: E402

from . import pgserver  # noqa: E402

PG_FIXTURES = {"pg_cluster", "pg_server", "postgres_url", "postgres_db", "dovecot"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the PostgreSQL fixtures need a Debian tool: they are ``external``."""
    for item in items:
        if PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.external)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgserver.PgServer]:
    """A fresh cluster on a free 127.0.0.1 port for the session; deleted at its end.

    Without PostgreSQL's binaries it skips, saying why; under CI (CI=true) it fails instead,
    so that a missing install step in .ci/run is never hidden behind skips.
    """
    bindir = pgserver.find_bindir()
    if bindir is None:
        reason = pgserver.missing_reason()
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"under CI, {reason}", pytrace=False)
        pytest.skip(reason)
    server = pgserver.launch(bindir)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_url(pg_cluster: pgserver.PgServer) -> str:
    """postgresql://harkat@127.0.0.1:PORT/harkat: the session cluster's database, shared by
    every test that uses it (``postgres_db`` gives a test a database of its own)."""
    return pg_cluster.url()


@pytest.fixture
def pg_server(pg_cluster: pgserver.PgServer) -> Iterator[pgserver.PgServer]:
    """The session cluster, for a test to ``stop()`` and ``start()``; running again after it."""
    yield pg_cluster
    pg_cluster.start()


@pytest.fixture
def postgres_db(pg_server: pgserver.PgServer) -> Iterator[str]:
    """The URL of a new empty database (test_<n>) for this test alone; dropped after it."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.start()  # the test may have stopped the server
    pg_server.drop_database(name)


# -- Dovecot: a throwaway IMAP server per test (tests/dovecotserver.py) -----------------------

from . import dovecotserver  # noqa: E402


@pytest.fixture
def dovecot(monkeypatch: pytest.MonkeyPatch) -> Iterator[dovecotserver.DovecotServer]:
    """A Dovecot IMAP server on loopback ports with one user; its password in
    HARKAT_TEST_IMAP_PASSWORD. Skips without Dovecot, fails instead under CI=true."""
    reason = dovecotserver.missing_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"under CI, {reason}", pytrace=False)
        pytest.skip(reason)
    server = dovecotserver.DovecotServer().start()
    monkeypatch.setenv("HARKAT_TEST_IMAP_PASSWORD", dovecotserver.PASSWORD)
    yield server
    server.close()
