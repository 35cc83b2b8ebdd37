"""The one-click unsubscribe endpoint (RFC 8058), an aiohttp application.

``GET <url>?t=TOKEN`` shows a confirmation page in the member's language; nothing changes, so
link scanners that fetch every URL unsubscribe nobody. ``POST`` with the form field
``List-Unsubscribe=One-Click`` (what Gmail and Yahoo send, and what the page's button sends)
records the address in the project-wide suppression file at once; every later campaign skips
it. No cookies, no login. A bad or forged token gets a plain 400 and changes nothing.
A test message's token (``send --test-to``) gets a page saying so, and nothing is recorded.
Addresses are not written to the server's log: the suppression file is the record.
The page names the union (the campaign's ``identification`` name, else its From name) when
the server knows the list's campaign, else the list id.
"""

from __future__ import annotations

import asyncio
import html
import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from pathlib import Path

from aiohttp import web

from ..errors import HarkatError
from ..lists.suppression import add_suppression, read_suppressions
from ..mail.tokens import BadToken, Signer, Subscription
from ..models import Campaign
from ..store import Store, open_store

log = logging.getLogger(__name__)
ONE_CLICK = "One-Click"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Unsubscribe",
        "ask": "Stop sending messages from {list} to {address}?",
        "button": "Unsubscribe",
        "done": "Done: {address} will receive no more messages from {list}.",
        "already": "{address} is already unsubscribed from the messages of {list}.",
        "test": "This was a test message; nothing was recorded. A member who uses this link "
        "in their own message stops receiving messages from {list} at once.",
    },
    "fr": {
        "title": "Désabonnement",
        "ask": "Ne plus envoyer à {address} les messages envoyés par {list} ?",
        "button": "Me désabonner",
        "done": "C’est fait : {address} ne recevra plus les messages envoyés par {list}.",
        "already": "{address} est déjà désabonné·e des messages envoyés par {list}.",
        "test": "C’était un message d’essai ; rien n’a été enregistré. Un membre qui suit ce "
        "lien dans son propre message ne reçoit plus les messages envoyés par {list}.",
    },
}
NOT_RECORDED = (
    "Your unsubscribe could not be recorded just now; please try again in a few minutes.\n"
    "Votre désabonnement n’a pas pu être enregistré ; veuillez réessayer dans quelques minutes.\n"
)
BAD_TOKEN = (
    "This unsubscribe link is not valid or was altered; nothing was changed.\n"
    "Ce lien de désabonnement n’est pas valide ou a été modifié ; rien n’a été changé.\n"
)


Names = Mapping[str, Mapping[str, str]]  # list id -> language ("*": any) -> the union's name


def sender_name(campaign: Campaign, language: str) -> str:
    """Who sends, by name: the identification's name in the language, else From's name."""
    if campaign.identification is not None:
        return campaign.identification.name_for(language)
    name, address = parseaddr(campaign.sender_for(language))
    return name or address


def union_names(campaigns: Iterable[Campaign]) -> dict[str, dict[str, str]]:
    """Who sends each list, by language, as its unsubscribe page names it."""
    names: dict[str, dict[str, str]] = {}
    for campaign in campaigns:
        languages = {*_TEXT, *campaign.sender, campaign.default_language}
        if campaign.identification is not None:
            languages |= set(campaign.identification.name) - {"*"}
        by_language = {lang: sender_name(campaign, lang) for lang in sorted(languages)}
        by_language["*"] = sender_name(campaign, campaign.default_language)
        names.setdefault(campaign.list_id, by_language)
    return names


def _page(
    subscription: Subscription, key: str, form: bool, names: Names | None = None
) -> web.Response:
    words = _TEXT.get(subscription.language, _TEXT["en"])
    known = (names or {}).get(subscription.list_id, {})
    shown = known.get(subscription.language) or known.get("*") or subscription.list_id
    values = {
        "list": f"<b>{html.escape(shown)}</b>",
        "address": f"<b>{html.escape(subscription.address)}</b>",
    }
    body = f"<p>{words[key].format(**values)}</p>"
    if form:
        body += (
            '<form method="post"><input type="hidden" name="List-Unsubscribe" '
            f'value="{ONE_CLICK}"><button type="submit">{words["button"]}</button></form>'
        )
    lang = subscription.language if subscription.language in _TEXT else "en"
    document = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{words['title']}</title></head>"
        '<body style="font-family:Arial,sans-serif;max-width:36em;margin:3em auto;padding:0 1em">'
        f"<h1>{words['title']}</h1>{body}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", headers=_HEADERS)


class FileRecord:
    """Suppressions in the project's ``suppression.txt`` (one machine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    async def contains(self, address: str) -> bool:
        def read() -> bool:
            return self.path.exists() and address.lower() in read_suppressions([self.path])[0]

        return await asyncio.to_thread(read)

    async def add(self, address: str, list_id: str) -> None:
        await asyncio.to_thread(add_suppression, self.path, address, "unsubscribed", list_id)


class StoreRecord:
    """Suppressions in a send log that every sending machine reads (PostgreSQL, or SQLite)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.where = location
        self.store: Store | None = None

    async def _store(self) -> Store:
        if self.store is None:  # opened in the server's own event loop
            self.store = await open_store(self.location)
        return self.store

    async def contains(self, address: str) -> bool:
        return address.lower() in await (await self._store()).suppressions()

    async def add(self, address: str, list_id: str) -> None:
        await (await self._store()).add_suppression(address, "unsubscribed", list_id)

    async def close(self, _: web.Application) -> None:
        if self.store is not None:
            await self.store.close()


def make_app(
    signer: Signer, *records: Path | FileRecord | StoreRecord, names: Names | None = None
) -> web.Application:
    """The application: any path, token in the ``t`` query parameter.

    ``records``: where an unsubscribe is written, every one of them: the project's suppression
    file (a path), and a send log shared by every sending machine. ``names``: who sends each
    list, per language (``union_names``), for the page to name the union.
    """
    where = [FileRecord(r) if isinstance(r, Path) else r for r in records]
    places = ", ".join(w.where for w in where)

    def subscription(request: web.Request) -> Subscription:
        try:
            return signer.verify(request.query.get("t", ""))
        except BadToken:
            raise web.HTTPBadRequest(text=BAD_TOKEN, headers=_HEADERS) from None

    async def confirm(request: web.Request) -> web.Response:
        named = subscription(request)
        if named.test:  # a test message: say so, look nothing up
            return _page(named, "test", form=False, names=names)
        try:
            already = any([await w.contains(named.address) for w in where])
        except (HarkatError, OSError):
            already = False  # the page only asks; the POST reports a failure to record
        return _page(named, "already" if already else "ask", form=not already, names=names)

    async def unsubscribe(request: web.Request) -> web.Response:
        named = subscription(request)
        form = await request.post()
        if form.get("List-Unsubscribe") != ONE_CLICK:
            raise web.HTTPBadRequest(
                text="expected the form field List-Unsubscribe=One-Click\n", headers=_HEADERS
            )
        if named.test:  # the tester's address is no member's: nothing is recorded anywhere
            return _page(named, "test", form=False, names=names)
        try:
            for record in where:
                await record.add(named.address, named.list_id)
        except (HarkatError, OSError) as exc:
            # Not recorded: say so (a mail provider retries a failed one-click POST); the log
            # line names where and the cause, never the address.
            log.error("unsubscribe not recorded in %s: %s", places, type(exc).__name__)
            raise web.HTTPServiceUnavailable(text=NOT_RECORDED, headers=_HEADERS) from None
        return _page(named, "done", form=False, names=names)

    app = web.Application(client_max_size=16 * 1024)
    app.router.add_get("/{tail:.*}", confirm)
    app.router.add_post("/{tail:.*}", unsubscribe)
    for record in where:
        if isinstance(record, StoreRecord):
            app.on_cleanup.append(record.close)
    return app


class ServerThread:
    """The application on a loopback port in a background thread (tests, the quick start)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        """Listen, and return once the port accepts connections."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        # Bind first, so port 0 (any free port) can be read back.
        sock = socket.create_server((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        """Close the listener and the loop."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
