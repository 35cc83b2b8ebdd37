"""Test sends through the CLI and real SMTP: harmless links, their own outbox, whose data."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.mail.tokens import Signer

from .conftest import UNSUBSCRIBE_SECRET, Delivered

SIGNER = Signer(UNSUBSCRIBE_SECRET.encode())


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _test_send(project: Path, port: int, *extra: str) -> tuple[int, str]:
    return _run(
        "send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes",
        "--test-to", "staff@example.org", *extra,
    )


def _link(delivered: Delivered) -> str:
    match = re.match(r"<(https://[^>]+)>", str(delivered.message["List-Unsubscribe"]))
    assert match
    return match.group(1)


def _body(delivered: Delivered, subtype: str) -> str:
    part = delivered.message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def test_test_message_links_name_the_tester_never_a_member(project: Path, smtp_server) -> None:
    """Header and body carry one test token naming the tester; no member's token is in it."""
    server, handler = smtp_server()
    code, out = _test_send(project, server.port)
    assert code == 0, out
    assert len(handler.messages) == 2
    for delivered in handler.messages:
        link = _link(delivered)
        token = parse_qs(urlsplit(link).query)["t"][0]
        named = SIGNER.verify(token)
        assert named.test and named.address == "staff@example.org"
        assert link in _body(delivered, "html").replace("&amp;", "&")
        assert link in _body(delivered, "plain")
        tokens = set(re.findall(r"[?&]t=([A-Za-z0-9_-]+)", _body(delivered, "html")))
        assert tokens == {token}  # the member whose data is shown has no link in it


def test_as_member_picks_whose_data_and_the_subject_says_so(project: Path, smtp_server) -> None:
    """--as MEMBER (id, address or row) renders every language with that member's data."""
    server, handler = smtp_server()
    code, out = _test_send(project, server.port, "--as", "M105624")
    assert code == 0, out
    subjects = sorted(str(m.message["Subject"]) for m in handler.messages)
    rows = {re.match(r"\[TEST as Hélène Roy, row (\d+)\] ", s).group(1) for s in subjects}  # type: ignore[union-attr]
    assert len(rows) == 1 and len(subjects) == 2
    assert {m.message["Content-Language"] for m in handler.messages} == {"en", "fr"}
    assert all("Hélène" in _body(m, "plain") for m in handler.messages)
    for member in ("helene.roy4@mail.example.ca", rows.pop()):  # by address, by row: the same
        before = len(handler.messages)
        code, out = _test_send(project, server.port, "--as", member)
        assert code == 0, out
        assert all(
            str(m.message["Subject"]).startswith("[TEST as Hélène Roy, row ")
            for m in handler.messages[before:]
        )


def test_as_names_a_missing_or_skipped_member_clearly(project: Path, smtp_server) -> None:
    """An --as nobody matches, or a row not sent to, is one line and exit 2; nothing is sent."""
    server, handler = smtp_server()
    code, out = _test_send(project, server.port, "--as", "M000000")
    assert code == 2
    assert "--as M000000: no member of members.csv has this member id, address or row" in out
    for skipped in ("owen.lavoie47@mail.example.ca", "M104181"):  # an inactive member's row
        code, out = _test_send(project, server.port, "--as", skipped)
        assert code == 2 and "is not sent to (outside segment" in out
    code, out = _run("send", str(project), "--as", "M105624")
    assert code == 2 and "--as picks whose data a test message shows: add --test-to" in out
    assert handler.messages == [] and "Traceback" not in out


def test_test_messages_go_to_their_own_outbox(project: Path) -> None:
    """Through the capture relay, tests are filed in outbox/<campaign>-tests; the real one stays empty."""
    import mailbox
    from email import message_from_bytes, policy

    code, out = _run("send", str(project), "--test-to", "staff@example.org", "--as", "M105624")
    assert code == 0, out
    root = project.parent.parent / "outbox"
    assert f"test messages are in {root / 'sept2018-tests'}" in out
    assert not (root / "sept2018").exists()
    box = mailbox.Maildir(str(root / "sept2018-tests"), create=False)
    subjects = [
        str(message_from_bytes(box.get_bytes(k), policy=policy.default)["Subject"])
        for k in box.iterkeys()
    ]
    assert len(subjects) == 2 and all(s.startswith("[TEST as Hélène Roy, row ") for s in subjects)
