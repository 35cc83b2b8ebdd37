"""One-click unsubscribe: message -> URL -> POST -> the next campaign skips that member."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.mail.tokens import Signer
from harkat_mail.web.unsubscribe import ServerThread, make_app

from ..conftest import UNSUBSCRIBE_SECRET, Delivered
from ..mail.tokenhelpers import base64_forms, v1_token

ONE_CLICK = b"List-Unsubscribe=One-Click"


@pytest.fixture
def unsubscribe_server(project: Path) -> Iterator[tuple[ServerThread, Path]]:
    """The unsubscribe server on a free loopback port, recording into the project's file."""
    suppression = project.parent.parent / "suppression.txt"
    app = make_app(Signer(UNSUBSCRIBE_SECRET.encode()), suppression)
    server = ServerThread(app).start()
    yield server, suppression
    server.stop()


def _send(project: Path, port: int) -> str:
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def _https_link(delivered: Delivered) -> str:
    header = str(delivered.message["List-Unsubscribe"])
    match = re.match(r"<(https://[^>]+)>", header)
    assert match, header
    return match.group(1)


def _local(url: str, server: ServerThread) -> str:
    """The message's https URL, aimed at the test server (TLS ends at a proxy in production)."""
    parts = urlsplit(url)
    return f"http://127.0.0.1:{server.port}{parts.path}?{parts.query}"


MULTIPART = (
    b"--b0undary\r\n"
    b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
    b"One-Click\r\n"
    b"--b0undary--\r\n"
)


def _request(
    url: str, body: bytes | None = None, multipart: bool = False
) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        kind = "multipart/form-data; boundary=b0undary" if multipart else None
        request.add_header("Content-Type", kind or "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_every_message_carries_the_list_headers(project: Path, smtp_server) -> None:
    """Message-ID, Date, MIME-Version, List-Id, one-line List-Unsubscribe (https + mailto), -Post."""
    server, handler = smtp_server()
    _send(project, server.port)
    assert handler.messages
    links = set()
    for delivered in handler.messages:
        msg = delivered.message
        for name in ("Message-ID", "Date", "MIME-Version", "List-Id"):
            assert msg[name], name
        assert msg["List-Id"] == "<sept2018.cupw.example.org>"
        raw = delivered.data.split(b"\r\n\r\n", 1)[0]
        line = re.search(rb"^List-Unsubscribe: (.*)$", raw, re.M)
        assert line is not None
        # One unfolded line: the next header line is a new header, not a continuation.
        after = raw[line.end() :].split(b"\r\n")[1]
        assert not after[:1].isspace()
        assert re.fullmatch(rb"<https://[^>]+>, <mailto:[^>]+>\r?", line.group(1))
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        links.add(_https_link(delivered))
    assert len(links) == len(handler.messages)  # one link per recipient


def test_links_show_no_address_or_list_to_a_proxy_log(project: Path, smtp_server) -> None:
    """The URL a proxy would log names neither the member's address nor the list, even in base64."""
    server, handler = smtp_server()
    _send(project, server.port)
    assert handler.messages
    for delivered in handler.messages:
        url = _https_link(delivered)
        token = parse_qs(urlsplit(url).query)["t"][0]
        assert re.fullmatch(r"2[A-Za-z0-9_-]+", token)
        address = delivered.rcpt_tos[0]
        for value in (address, "sept2018.cupw.example.org", address.split("@")[0]):
            assert value.lower() not in unquote(url).lower()
            assert not any(form in token for form in base64_forms(value))


def test_unsubscribe_round_trip_then_the_next_campaign_skips_the_member(
    project: Path, smtp_server, unsubscribe_server
) -> None:
    """GET confirms in the member's language; POST (either form encoding) records; later campaigns skip."""
    web, suppression = unsubscribe_server
    server, handler = smtp_server()
    _send(project, server.port)
    french = next(m for m in handler.messages if m.message["Content-Language"] == "fr")
    address = french.rcpt_tos[0]
    url = _local(_https_link(french), web)
    status, page, headers = _request(url)
    assert status == 200 and "Désabonnement" in page and address.lower() in page.lower()
    assert "Set-Cookie" not in headers
    assert not suppression.exists()  # a GET (a link scanner) changes nothing
    status, page, headers = _request(url, ONE_CLICK)
    assert status == 200 and "C’est fait" in page and "Set-Cookie" not in headers
    lines = suppression.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(f"{address.lower()},unsubscribed") for line in lines)
    assert _request(url)[1].count("déjà désabonné") == 1
    # RFC 8058 prefers multipart/form-data for the one-click POST (what Gmail sends).
    english = next(m for m in handler.messages if m.message["Content-Language"] == "en")
    status, page, _ = _request(_local(_https_link(english), web), MULTIPART, multipart=True)
    assert status == 200 and "Done:" in page
    left = {address.lower(), english.rcpt_tos[0].lower()}
    # The next campaign from the same project: everyone again, except the one who left.
    second = project.with_name("oct2018.yaml")
    second.write_text(
        project.read_text(encoding="utf-8").replace("name: sept2018", "name: oct2018"),
        encoding="utf-8",
    )
    server2, handler2 = smtp_server()
    out = _send(second, server2.port)
    assert "2 suppressed" in out
    received = {m.rcpt_tos[0].lower() for m in handler2.messages}
    assert received == {m.rcpt_tos[0].lower() for m in handler.messages} - left


def test_forged_or_broken_tokens_change_nothing(
    project: Path, smtp_server, unsubscribe_server
) -> None:
    """A token for another address, signed with another key, or altered, gets 400 and no write."""
    web, suppression = unsubscribe_server
    server, handler = smtp_server()
    _send(project, server.port)
    url = _local(_https_link(handler.messages[0]), web)
    base, token = url.split("?t=")
    forged = Signer(b"not-the-campaign-secret-000000").token(
        "sept2018.cupw.example.org", "victim@example.org", "en"
    )
    middle = len(token) // 2
    flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    # The previous release's form: made with another secret; a victim's payload, a genuine mac.
    genuine = v1_token(UNSUBSCRIBE_SECRET.encode(), "sept2018.cupw.example.org", "a@x.org", "en")
    victim = v1_token(b"x", "sept2018.cupw.example.org", "victim@example.org", "en")
    swapped = f"{victim.split('.')[0]}.{genuine.split('.')[1]}"
    bad_tokens = (forged, flipped, token[:-2], "", "x.y", token + ".", victim, swapped)
    for bad in bad_tokens:
        status, body, _ = _request(f"{base}?t={bad}", ONE_CLICK)
        assert status == 400 and "not valid" in body, bad
        assert _request(f"{base}?t={bad}")[0] == 400
    status, _, _ = _request(url, b"List-Unsubscribe=Yes")  # not the RFC 8058 body
    assert status == 400
    assert not suppression.exists()


def test_a_link_from_the_previous_release_still_unsubscribes(unsubscribe_server) -> None:
    """A v1 link already in an inbox (payload.mac) confirms and records like a new one."""
    web, suppression = unsubscribe_server
    token = v1_token(
        UNSUBSCRIBE_SECRET.encode(), "sept2018.cupw.example.org", "old@example.org", "fr"
    )
    url = f"http://127.0.0.1:{web.port}/unsubscribe?t={token}"
    status, page, _ = _request(url)
    assert status == 200 and "Désabonnement" in page and "old@example.org" in page
    status, page, _ = _request(url, ONE_CLICK)
    assert status == 200 and "C’est fait" in page
    text = suppression.read_text(encoding="utf-8")
    assert "old@example.org,unsubscribed " in text and text.endswith(",sept2018.cupw.example.org\n")


def test_the_command_serves_and_records_then_stops(tmp_path: Path) -> None:
    """harkat-mail unsubscribe-server listens, records a one-click POST, and needs the secret."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HARKAT_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
    command = [sys.executable, "-m", "harkat_mail", "unsubscribe-server"]
    process = subprocess.Popen(
        [*command, "--project", str(tmp_path), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))  # type: ignore[union-attr]
        token = Signer(UNSUBSCRIBE_SECRET.encode()).token("l.example.org", "zoe@example.org", "en")
        status, page, _ = _request(f"http://127.0.0.1:{port}/unsubscribe?t={token}", ONE_CLICK)
        assert status == 200 and "zoe@example.org" in page
        text = (tmp_path / "suppression.txt").read_text(encoding="utf-8")
        assert "\nzoe@example.org,unsubscribed " in text and text.endswith(",l.example.org\n")
    finally:
        process.terminate()
        process.wait(timeout=10)
    env.pop("HARKAT_UNSUBSCRIBE_SECRET")
    refused = subprocess.run([*command, "--port", "0"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "HARKAT_UNSUBSCRIBE_SECRET is not set" in refused.stderr


def test_an_unsubscribe_that_cannot_be_recorded_is_a_503_not_a_success(
    project: Path, smtp_server, tmp_path: Path, caplog
) -> None:
    """A suppression file that cannot be written: 503 asking to retry, logged without the address."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()  # a folder where the file should be: every write fails
    server = ServerThread(make_app(Signer(UNSUBSCRIBE_SECRET.encode()), blocked)).start()
    try:
        relay, handler = smtp_server()
        _send(project, relay.port)
        url = _local(_https_link(handler.messages[0]), server)
        status, body, _ = _request(url, ONE_CLICK)
    finally:
        server.stop()
    assert status == 503 and "try again" in body
    assert handler.messages[0].rcpt_tos[0] not in caplog.text
    assert "unsubscribe not recorded" in caplog.text
