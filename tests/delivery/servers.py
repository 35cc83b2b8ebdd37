"""aiosmtpd relays that advertise PIPELINING, CHUNKING (with BDAT) and AUTH XOAUTH2.

aiosmtpd reads commands line by line, so pipelined groups are answered in order as they are;
these subclasses add what a real relay advertises, and record every TCP read so a test can
see which commands arrived together in one flight.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, Session

from tests.conftest import CountingSMTP, RecordingHandler, TestServer


@dataclass
class ModernHandler(RecordingHandler):
    """A recording handler whose EHLO offers ``extensions``, and that checks XOAUTH2 tokens."""

    extensions: tuple[str, ...] = ("PIPELINING",)
    reads: list[bytes] = field(default_factory=list)
    events: list[tuple[str, bytes]] = field(default_factory=list)  # ("read"|"reply", bytes)
    oauth_user: str = "appeals@cupw.example.org"
    token: str = ""
    tokens_seen: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return responses[:-1] + [f"250-{name}" for name in self.extensions] + responses[-1:]

    async def auth_XOAUTH2(self, server: SMTPServer, args: list[str]) -> AuthResult:
        """Google's behaviour: a bad token gets a 334 with base64 JSON, then 535."""
        fields = base64.b64decode(args[1]).decode().split("\x01")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ")
        with self.lock:
            self.tokens_seen.append(token)
        if user == self.oauth_user and token == self.token:
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    def flights(self) -> list[bytes]:
        """Every read the server made, in order (one TCP read each)."""
        with self.lock:
            return list(self.reads)


class ModernSMTP(CountingSMTP):
    """Records each read; implements RFC 3030 BDAT when CHUNKING is advertised."""

    def data_received(self, data: bytes) -> None:
        with self.event_handler.lock:
            self.event_handler.reads.append(data)
            self.event_handler.events.append(("read", data))
        super().data_received(data)

    async def push(self, status: Any) -> None:
        with self.event_handler.lock:
            text = status if isinstance(status, bytes) else str(status).encode()
            self.event_handler.events.append(("reply", text))
        await super().push(status)

    async def smtp_BDAT(self, arg: str) -> None:
        size, *last = arg.split()
        chunk = await self._reader.readexactly(int(size))
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:  # the chunk is read (RFC 3030) and refused
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        self.envelope.original_content = (self.envelope.original_content or b"") + chunk
        if [word.upper() for word in last] != ["LAST"]:
            await self.push(f"250 2.0.0 {len(chunk)} octets received")
            return
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


class ModernServer(TestServer):
    def _factory(self) -> SMTPServer:
        return ModernSMTP(self.handler, loop=self.loop, hostname="modern.local", **self.smtp_kwargs)


@pytest.fixture
def modern_server() -> Iterator[Callable[..., tuple[ModernServer, ModernHandler]]]:
    """Start relays offering ``extensions`` (PIPELINING by default) on free loopback ports."""
    started: list[ModernServer] = []

    def start(
        extensions: tuple[str, ...] = ("PIPELINING",),
        token: str = "",
        smtp: dict[str, Any] | None = None,
        **rules: tuple[Any, ...],
    ) -> tuple[ModernServer, ModernHandler]:
        handler = ModernHandler(rules=dict(rules), extensions=extensions, token=token)
        options = {"auth_require_tls": False, **(smtp or {})}
        server = ModernServer(handler, **options).start()
        started.append(server)
        return server, handler

    yield start
    for server in started:
        server.stop()
