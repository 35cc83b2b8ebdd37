"""Real SMTP servers on 127.0.0.1 (aiosmtpd), some of them misbehaving on purpose."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from harkat_mail.relay import RelayThread

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
    """Accepts everything and keeps it; ``rules`` let a test misbehave per recipient.

    A rule maps a recipient substring to an action at a stage: ``("rcpt", "550 ...")``,
    ``("data", "451 ...")`` or ``("data", "drop-after-dot")``.
    """

    rules: dict[str, tuple[str, str]] = field(default_factory=dict)
    messages: list[Delivered] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _rule(self, address: str, stage: str) -> str | None:
        for needle, (at, action) in self.rules.items():
            if needle in address.lower() and at == stage:
                return action
        return None

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        action = self._rule(address, "rcpt")
        if action:
            return action
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        action = self._rule(envelope.rcpt_tos[0], "data")
        if action == "drop-after-dot":
            with self.lock:  # it arrived, but the client never hears so
                self.messages.append(
                    Delivered(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        envelope.original_content or b"",
                    )
                )
            assert server.transport is not None
            server.transport.abort()
            return "250 never seen"
        if action:
            return action
        with self.lock:
            self.messages.append(
                Delivered(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content or envelope.content or b"",
                )
            )
        return "250 2.0.0 queued"


class CountingSMTP(SMTPServer):
    """aiosmtpd's server, counting connections so tests can prove sessions are reused."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler = self.event_handler
        with handler.lock:
            handler.connections += 1
        super().connection_made(transport)


class TestServer(RelayThread):
    """A RelayThread whose sessions count connections."""

    def _factory(self) -> SMTPServer:
        return CountingSMTP(self.handler, loop=self.loop, hostname="test.local")


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[TestServer, RecordingHandler]]]:
    """Start recording servers on free loopback ports; stop them after the test."""
    started: list[TestServer] = []

    def start(**rules: tuple[str, str]) -> tuple[TestServer, RecordingHandler]:
        handler = RecordingHandler(rules=dict(rules))
        server = TestServer(handler).start()
        started.append(server)
        return server, handler

    yield start
    for server in started:
        server.stop()


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
