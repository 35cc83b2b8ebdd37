"""An IMAP bounce mailbox (aioimaplib): TLS always verified, processed mail moved, never deleted.

``imaps://user@host[:993]/FOLDER`` connects over TLS; ``imap://user@host[:143]/FOLDER`` must
upgrade with STARTTLS (aioimaplib has the command but not the upgrade: it is done here with
``loop.start_tls``). The password comes only from the environment variable ``password_env``.
Certificates are checked against the system's trust store, plus ``ca_file`` when given.
With ``readonly`` (``bounces check``) the folder is opened with EXAMINE and read with
BODY.PEEK: no \\Seen flag is set, and ``move`` refuses.

Processed messages go to the ``processed`` folder (created when missing) with ``UID MOVE``; a
server without MOVE gets ``UID COPY``, ``UID STORE +FLAGS (\\Deleted)`` and, with UIDPLUS,
``UID EXPUNGE`` of exactly those messages. Without UIDPLUS the originals stay flagged
\\Deleted: a plain EXPUNGE would also remove messages others flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aioimaplib

from ..errors import BounceSourceError
from .mailboxes import Returned

TIMEOUT = 30.0  # seconds for any one command


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quiet(task: asyncio.Future[Any]) -> None:
    """Take an abandoned task's outcome, so asyncio does not print it."""
    if not task.cancelled():
        task.exception()


class _Watched(set[asyncio.Future[Any]]):
    """aioimaplib's set of its own tasks (the greeting), each one watched as it is added."""

    def __init__(self, watch: Callable[[asyncio.Future[Any]], None]) -> None:
        super().__init__()
        self.watch = watch

    def add(self, task: asyncio.Future[Any]) -> None:
        task.add_done_callback(self.watch)
        super().add(task)


class ImapMailbox:
    """One folder of an IMAP account."""

    def __init__(
        self,
        url: str,
        processed: str,
        password_env: str | None,
        ca_file: Path | None,
        *,
        readonly: bool = False,
        names: tuple[str, str] = ("bounces.password_env", "bounces.ca_file"),
    ) -> None:
        # ``names``: what the user sets for the password variable and the CA file, for errors.
        self.password_name, self.ca_name = names
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # an unclosed IPv6 bracket, a port out of range
            raise BounceSourceError(f"{url}: not a valid IMAP URL ({exc})") from None
        if parts.password is not None:
            raise BounceSourceError(
                f"{parts.scheme}://{parts.hostname or ''}: never put the password in the URL; "
                f"give {self.password_name} an environment variable holding it"
            )
        if not parts.hostname or not parts.username:
            raise BounceSourceError(f"{url}: expected imaps://user@host[:port][/folder]")
        self.tls = parts.scheme.lower() == "imaps"
        self.host = parts.hostname
        self.port = port or (993 if self.tls else 143)
        self.user = unquote(parts.username)
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.where = f"{parts.scheme.lower()}://{parts.username}@{self.host}:{self.port}/{self.folder}"
        self.processed = processed
        self.readonly = readonly
        self.password_env = password_env
        self.ca_file = ca_file
        self.client: aioimaplib.IMAP4 | None = None
        self.timeout = TIMEOUT  # seconds for any one command
        self.gone = asyncio.Event()  # set when the server hangs up or its greeting fails
        self.why = ""

    def _password(self) -> str:
        value = os.environ.get(self.password_env or "", "")
        if not self.password_env or not value:
            unset = f" ({self.password_env} is not set)" if self.password_env else ""
            raise BounceSourceError(
                f"{self.where}: set {self.password_name} to an environment variable holding "
                f"the IMAP password{unset}"
            )
        return value

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise BounceSourceError(f"{self.ca_name} {self.ca_file}: {exc}") from None
        return context

    def _lost(self, exc: Exception | None) -> None:
        """The server hung up: wake every command still waiting for its answer.

        aioimaplib leaves them pending forever; its greeting task even holds a lock that a
        cancelled caller must take back, so neither its timeout nor ``wait_for`` would end."""
        self._broken("the server closed the connection")
        protocol = self.client.protocol if self.client is not None else None
        if protocol is None:
            return
        waiting = [protocol.pending_sync_command, *protocol.pending_async_commands.values()]
        for command in waiting:
            if command is not None:
                command.close(b"the server closed the connection", "BYE")

    def _broken(self, why: str) -> None:
        if not self.gone.is_set():
            self.why = why
            self.gone.set()

    def _greeted(self, task: asyncio.Future[Any]) -> None:
        """aioimaplib's greeting task ended: if it failed, nothing else will ever say so."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._broken(f"bad greeting: {str(exc)[:200] or type(exc).__name__}")

    async def _bounded(self, what: str, command: Awaitable[Any]) -> Any:
        """Await ``command`` at most ``timeout`` seconds, in a task of its own.

        A task stuck behind aioimaplib's lock cannot finish being cancelled: it is cancelled
        and the connection aborted, but never waited for."""
        task = asyncio.ensure_future(command)
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait({task, gone}, timeout=self.timeout, return_when=FIRST_COMPLETED)
        finally:
            gone.cancel()
        if task.done() and not self.gone.is_set():
            return task.result()
        task.cancel()
        task.add_done_callback(_quiet)
        self._abort()
        why = self.why if self.gone.is_set() else f"no answer in {self.timeout:g} s"
        raise BounceSourceError(f"{self.where}: {what} failed ({why})")

    def _abort(self) -> None:
        transport = self.client.protocol.transport if self.client is not None else None
        if transport is not None:
            transport.abort()

    async def _run(self, what: str, command: Awaitable[Any]) -> Any:
        """One command, bounded in time; a server that hangs, hangs up or answers garbage is
        one error naming it and the step."""
        try:
            response = await self._bounded(what, command)
        except (TimeoutError, OSError, ValueError, aioimaplib.AioImapException) as exc:
            why = str(exc) or type(exc).__name__
            raise BounceSourceError(f"{self.where}: {what} failed ({why[:200]})") from None
        return await self._check(what, response)

    async def _check(self, what: str, response: Any) -> Any:
        if response.result != "OK":
            said = b" ".join(bytes(line) for line in response.lines).decode(errors="replace")
            raise BounceSourceError(f"{self.where}: {what} refused: {said.strip()[:200]}")
        return response

    async def _connect(self) -> aioimaplib.IMAP4:
        password = self._password()
        context = self._context()
        try:
            return await self._login(password, context)
        except BaseException:
            self._abort()  # nothing half-open left behind
            raise
        finally:
            self.client = None  # set for good by _client once logged in

    async def _login(self, password: str, context: ssl.SSLContext) -> aioimaplib.IMAP4:
        try:
            # IMAP4 with an SSL context is IMAP4_SSL, and unlike it takes conn_lost_cb.
            client = aioimaplib.IMAP4(
                self.host, self.port, timeout=self.timeout, conn_lost_cb=self._lost,
                ssl_context=context if self.tls else None,
            )
            self.client = client  # for _lost and _abort
            client.protocol.tasks = _Watched(self._greeted)  # before any byte arrives
            # The greeting, then aioimaplib's own CAPABILITY: the step a hang-up can wedge.
            await self._bounded("greeting and CAPABILITY", client.wait_hello_from_server())
            if not self.tls:
                await self._starttls(client, context)
            await self._run("LOGIN", client.login(self.user, password))
        except ssl.SSLError as exc:
            raise BounceSourceError(
                f"{self.where}: TLS failed ({exc.reason or exc}); the server's certificate "
                f"must verify ({self.ca_name} adds a trust anchor)"
            ) from None
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            why = str(exc) or type(exc).__name__
            raise BounceSourceError(f"{self.where}: cannot connect ({why})") from None
        return client

    async def _starttls(self, client: aioimaplib.IMAP4, context: ssl.SSLContext) -> None:
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise BounceSourceError(
                f"{self.where}: the server offers no STARTTLS; use imaps:// (never plain text)"
            )
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        await self._run("STARTTLS", protocol.execute(command))
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=self.host
        )
        await self._bounded("CAPABILITY after STARTTLS", protocol.capability())  # forget the clear

    async def _client(self) -> aioimaplib.IMAP4:
        if self.client is None:
            self.client = await self._connect()
            if self.readonly:  # EXAMINE: the server changes no flag, whatever is fetched
                opened = self.client.examine(_quoted(self.folder))
                await self._run(f"EXAMINE {self.folder}", opened)
                # aioimaplib moves to SELECTED after SELECT only; EXAMINE selects as well.
                self.client.protocol.state = aioimaplib.SELECTED
            else:
                await self._run(f"SELECT {self.folder}", self.client.select(_quoted(self.folder)))
        return self.client

    async def messages(self) -> AsyncIterator[Returned]:
        client = await self._client()
        found = await self._run("UID SEARCH", client.uid_search("ALL"))
        words = (bytes(line).decode("ascii", "replace").split() for line in found.lines[:1])
        uids = [u for line in words for u in line if u.isascii() and u.isdigit()]
        for uid in uids:
            fetched = await self._run("UID FETCH", client.uid("fetch", uid, "BODY.PEEK[]"))
            data = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
            if data is not None:
                yield Returned(f"{self.where}:{uid}", data, uid)

    async def _ensure_folder(self, client: aioimaplib.IMAP4) -> None:
        listed = await self._run("LIST", client.list('""', _quoted(self.processed)))
        if not any(self.processed.encode() in bytes(line) for line in listed.lines[:-1]):
            await self._run(f"CREATE {self.processed}", client.create(_quoted(self.processed)))

    async def move(self, items: Sequence[Returned]) -> int:
        if not items:
            return 0
        if self.readonly:
            raise BounceSourceError(f"{self.where}: opened read-only, nothing may be moved")
        client = await self._client()
        await self._ensure_folder(client)
        uids = ",".join(item.handle for item in items)
        target = _quoted(self.processed)
        if client.has_capability("MOVE"):
            await self._run("UID MOVE", client.uid("move", uids, target))
            return len(items)
        await self._run("UID COPY", client.uid("copy", uids, target))
        await self._run("UID STORE", client.uid("store", uids, "+FLAGS.SILENT", r"(\Deleted)"))
        if client.has_capability("UIDPLUS"):
            await self._run("UID EXPUNGE", client.uid("expunge", uids))
        return len(items)

    async def close(self) -> None:
        if self.client is not None:
            # The work is done; a connection that does not say goodbye costs nothing.
            with contextlib.suppress(
                BounceSourceError, TimeoutError, OSError, aioimaplib.AioImapException
            ):
                if not self.gone.is_set():
                    await self._bounded("LOGOUT", self.client.logout())
            self._abort()
            self.client = None
