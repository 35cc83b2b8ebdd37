"""The embedded capture relay: a real SMTP server on loopback that files mail into a Maildir."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from ..errors import DeliveryError


class MaildirHandler:
    """aiosmtpd handler: each accepted message becomes one file in the Maildir."""

    def __init__(self, maildir: Path) -> None:
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(maildir), create=True)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        rcpts = ", ".join(envelope.rcpt_tos)
        with self.lock:
            self.box.add(b"X-Envelope-To: " + rcpts.encode() + b"\r\n" + data)
        return "250 2.0.0 Message accepted for delivery"


class RelayThread:
    """Runs an aiosmtpd server for ``handler`` on 127.0.0.1 in its own thread and event loop.

    Port 0 picks a free port; ``port`` tells which after ``start``.
    """

    def __init__(
        self,
        handler: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: Any = None,  # an SSLContext for implicit TLS (smtps)
        **smtp: Any,
    ) -> None:
        self.ssl = ssl
        self.handler = handler
        self.host = host
        self.port = port
        self.smtp_kwargs = smtp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None

    def _factory(self) -> SMTPServer:
        kwargs = {"enable_SMTPUTF8": True, "hostname": "harkat-relay.local", **self.smtp_kwargs}
        return SMTPServer(self.handler, loop=self.loop, **kwargs)

    def start(self) -> RelayThread:
        """Bind and serve; raise ``DeliveryError`` if the port cannot be bound."""
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(self._factory, host=self.host, port=self.port, ssl=self.ssl),
            self.loop,
        )
        try:
            self.server = future.result(timeout=10)
        except OSError as exc:
            self.stop()
            raise DeliveryError(f"relay {self.host}:{self.port}: cannot listen ({exc})") from None
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and the loop; connections in progress are dropped."""
        if self.server is not None:
            server = self.server

            async def close() -> None:
                server.close()
                # Sessions still open (a client that never said QUIT) end with the relay.
                current = asyncio.current_task()
                tasks = [t for t in asyncio.all_tasks() if t is not current]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await server.wait_closed()

            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
            self.server = None
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def __enter__(self) -> RelayThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_relay(maildir: Path, port: int = 0) -> RelayThread:
    """The capture relay used by ``smtp: local`` and ``harkat-mail relay``."""
    return RelayThread(MaildirHandler(maildir), port=port)
