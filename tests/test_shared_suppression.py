"""Unsubscribes recorded in the shared send log stop the next send on any machine."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

from harkat_mail.mail.tokens import Signer
from harkat_mail.store import open_store
from harkat_mail.web.unsubscribe import ServerThread, StoreRecord, make_app

from .conftest import UNSUBSCRIBE_SECRET
from .test_concurrency import _start, _states, send_log  # noqa: F401  (fixture)
from .test_crash import _project

LIST_ID = "sept2018.cupw.example.org"


def test_an_unsubscribe_in_the_send_log_skips_the_member_everywhere(
    tmp_path: Path, project: Path, smtp_server, send_log: str  # noqa: F811
) -> None:
    """POST to the endpoint recording in the send log: the next send skips that member."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=100000, count=40)
    first = _start(campaign, send_log, "--limit", "10")
    first.communicate(timeout=60)
    assert first.returncode == 0 and len(handler.messages) == 10
    leaving = "member30@example.org"  # not sent yet
    token = Signer(UNSUBSCRIBE_SECRET.encode()).token(LIST_ID, leaving, "fr")
    web = ServerThread(make_app(Signer(UNSUBSCRIBE_SECRET.encode()), StoreRecord(send_log)))
    web.start()
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{web.port}/unsubscribe?t={token}",
            data=b"List-Unsubscribe=One-Click",
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        web.stop()
    rest = _start(campaign, send_log)
    out, err = rest.communicate(timeout=60)
    assert rest.returncode == 0, err
    assert handler.copies(leaving) == 0 and len(handler.messages) == 39
    assert _states(send_log).get(leaving) is None  # skipped rows are not among the sendable
    assert "1 suppressed" in out


def test_an_unsubscribe_while_a_run_holds_the_member_stops_that_message(
    tmp_path: Path, project: Path, smtp_server, send_log: str  # noqa: F811
) -> None:
    """Unsubscribed after the run claimed them: never sent, and later runs skip them too."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=10, count=30)
    running = _start(campaign, send_log)
    while len(handler.messages) < 3:
        assert running.poll() is None
        time.sleep(0.01)
    leaving = "member25@example.org"  # claimed with the first batch, not yet sent

    async def unsubscribe() -> None:
        store = await open_store(send_log)
        try:
            await store.add_suppression(leaving, "unsubscribed", LIST_ID)
        finally:
            await store.close()

    asyncio.run(unsubscribe())
    running.communicate(timeout=60)
    again = _start(campaign, send_log)
    again.communicate(timeout=60)
    assert handler.copies(leaving) == 0
    assert all(handler.copies(f"member{i}@example.org") == 1 for i in range(30) if i != 25)
