"""The unsubscribe server's answers to test messages, and the union's name on its pages."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.mail.tokens import BadToken, Signer
from harkat_mail.store import open_store
from harkat_mail.web.unsubscribe import ServerThread, StoreRecord, make_app, union_names

from ..conftest import UNSUBSCRIBE_SECRET
from .test_unsubscribe import ONE_CLICK, _https_link, _local, _request

TEST_PAGE = "This was a test message; nothing was recorded."


def _deliver(project: Path, port: int, *extra: str) -> None:
    args = ["send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def _suppressions(location: Path) -> set[str]:
    async def read() -> set[str]:
        store = await open_store(location)
        try:
            return await store.suppressions()
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_test_messages_link_is_answered_and_records_nothing(
    project: Path, smtp_server, tmp_path: Path
) -> None:
    """GET and one-click POST of a test link: "this was a test" page; file and store unchanged."""
    relay, handler = smtp_server()
    _deliver(project, relay.port, "--test-to", "staff@example.org", "--as", "M105624")
    suppression = tmp_path / "suppression.txt"
    shared = tmp_path / "shared.sqlite"
    app = make_app(Signer(UNSUBSCRIBE_SECRET.encode()), suppression, StoreRecord(str(shared)))
    server = ServerThread(app).start()
    try:
        pages = []
        for delivered in handler.messages:
            url = _local(_https_link(delivered), server)
            pages.append(_request(url))
            pages.append(_request(url, ONE_CLICK))
    finally:
        server.stop()
    assert len(pages) == 4 and all(status == 200 for status, _, _ in pages)
    english = [page for _, page, _ in pages if 'lang="en"' in page]
    french = [page for _, page, _ in pages if 'lang="fr"' in page]
    assert len(english) == 2 and all(TEST_PAGE in page for page in english)
    assert len(french) == 2 and all("C’était un message d’essai" in page for page in french)
    assert all("<form" not in page for _, page, _ in pages)  # nothing to confirm
    assert not suppression.exists()
    assert not shared.exists() or _suppressions(shared) == set()


def test_a_members_page_names_the_union_in_their_language(project: Path, smtp_server) -> None:
    """The confirmation and done pages show identification.name in the member's language."""
    relay, handler = smtp_server()
    _deliver(project, relay.port)
    campaign = load_campaign(project)
    names = union_names([campaign])
    app = make_app(Signer(UNSUBSCRIBE_SECRET.encode()), project.parent.parent / "s.txt", names=names)
    server = ServerThread(app).start()
    try:
        by_language = {str(m.message["Content-Language"]): m for m in handler.messages}
        en_url = _local(_https_link(by_language["en"]), server)
        fr_url = _local(_https_link(by_language["fr"]), server)
        _, en_page, _ = _request(en_url)
        _, fr_done, _ = _request(fr_url, ONE_CLICK)
    finally:
        server.stop()
    assert "from <b>Canadian Union of Postal Workers</b>" in en_page
    assert "envoyés par <b>Syndicat des travailleurs et travailleuses des postes</b>" in fr_done
    assert campaign.list_id not in en_page + fr_done


def test_without_identification_the_page_names_the_from_display_name(project: Path) -> None:
    """A campaign without identification: the page names From's display name, per language."""
    text = project.read_text(encoding="utf-8")
    start = text.index("identification:")
    end = text.index("from:")
    project.write_text(
        text[:start].replace("purpose: commercial", "purpose: informational") + text[end:],
        encoding="utf-8",
    )
    names = union_names([load_campaign(project)])
    assert names["sept2018.cupw.example.org"]["en"] == "CUPW National Office"
    assert names["sept2018.cupw.example.org"]["fr"] == "STTP Bureau national"


def test_the_command_names_the_union_of_the_projects_campaigns(project: Path) -> None:
    """unsubscribe-server --project reads campaigns/ and its pages name the union."""
    env = {**os.environ, "HARKAT_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
    root = project.parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "harkat_mail", "unsubscribe-server", "--project", str(root),
         "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))  # type: ignore[union-attr]
        signer = Signer(UNSUBSCRIBE_SECRET.encode())
        token = signer.token("sept2018.cupw.example.org", "zoe@example.org", "fr")
        status, page, _ = _request(f"http://127.0.0.1:{port}/u?t={token}")
        test = signer.test_token("sept2018.cupw.example.org", "staff@example.org", "en")
        test_status, test_page, _ = _request(f"http://127.0.0.1:{port}/u?t={test}", ONE_CLICK)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert status == 200 and "Syndicat des travailleurs et travailleuses des postes" in page
    assert test_status == 200 and TEST_PAGE in test_page
    assert not (root / "suppression.txt").exists()


def test_a_test_token_never_opens_as_a_members_token() -> None:
    """A test token and a member token for the same values differ, and each says what it is."""
    signer = Signer(UNSUBSCRIBE_SECRET.encode())
    test = signer.test_token("l.example.org", "zoe@example.org", "en")
    real = signer.token("l.example.org", "zoe@example.org", "en")
    assert test != real and test[1:] != real[1:]
    assert signer.verify(test).test and not signer.verify(real).test
    with pytest.raises(BadToken):  # a test token relabelled as a member's does not open
        signer.verify("2" + test[1:])
