"""`bounces process` over IMAP against Dovecot: STARTTLS, verified certificates, no MOVE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

from ..campaign.helpers import edit
from ..dovecotserver import DovecotServer
from . import dsn
from .imaphelp import append, subjects

pytestmark = [pytest.mark.slow, pytest.mark.external]
BOUNCES = "bounces@cupw.example.org"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _setup(project: Path, smtp_server, server: DovecotServer, scheme: str, ca: bool = True) -> list:
    ca_line = f", ca_file: '{server.ca_file}'" if ca else ""
    edit(
        project,
        "smtp: local\n",
        f"smtp: local\nbounces: {{address: {BOUNCES}, mailbox: '{server.url(scheme)}', "
        f"password_env: HARKAT_TEST_IMAP_PASSWORD{ca_line}}}\n",
    )
    relay, handler = smtp_server()
    code, out = _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{relay.port}", "--yes")
    assert code == 0, out
    sent = sorted(handler.messages, key=lambda m: m.rcpt_tos[0])
    append(
        server,
        dsn.dsn(BOUNCES, sent[0].rcpt_tos[0], "5.1.1", "550 5.1.1 User unknown"),
        dsn.personal(BOUNCES),
    )
    return sent


def _state(project: Path, address: str) -> str:
    rows = json.loads(_cli("report", str(project), "--format", "json")[1])
    return next(r["state"] for r in rows if r["email"] == address and r["state"] != "skipped")


def test_starttls_mailbox_is_processed_and_others_stay(project: Path, smtp_server, dovecot: DovecotServer) -> None:
    """imap:// upgrades with STARTTLS; the bounce moves to harkat-processed, the reply stays."""
    sent = _setup(project, smtp_server, dovecot, "imap")
    code, out = _cli("bounces", "process", str(project))
    assert code == 0, out
    assert "1 moved" in out and "imap://bounces@127.0.0.1" in out
    assert _state(project, sent[0].rcpt_tos[0]) == "bounced"
    assert [s.split(" -> ")[0] for s in subjects(dovecot, "INBOX")] == ["Re: Mohamed Harkat"]
    assert len(subjects(dovecot, "harkat-processed")) == 1
    code, again = _cli("bounces", "process", str(project))
    assert code == 0 and "0 moved" in again and len(subjects(dovecot, "INBOX")) == 1


def test_untrusted_certificate_is_refused_and_nothing_changes(project: Path, smtp_server, dovecot: DovecotServer) -> None:
    """Without the CA in bounces.ca_file the TLS handshake fails: one line, exit 2, mail kept."""
    sent = _setup(project, smtp_server, dovecot, "imaps", ca=False)
    code, out = _cli("bounces", "process", str(project))
    assert code == 2 and "certificate must verify" in out and len(out.strip().splitlines()) == 1
    assert _state(project, sent[0].rcpt_tos[0]) == "sent"
    assert len(subjects(dovecot, "INBOX")) == 2


@pytest.fixture
def dovecot_without_move(monkeypatch: pytest.MonkeyPatch) -> Iterator[DovecotServer]:
    """A Dovecot that does not offer MOVE (as older servers): COPY, flag and UID EXPUNGE."""
    from .. import dovecotserver

    if dovecotserver.missing_reason():
        pytest.skip(dovecotserver.missing_reason() or "")
    caps = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE UIDPLUS"
    server = DovecotServer(extra=f"imap_capability = {caps}").start()
    monkeypatch.setenv("HARKAT_TEST_IMAP_PASSWORD", dovecotserver.PASSWORD)
    yield server
    server.close()


def test_server_without_move_gets_copy_and_uid_expunge(project: Path, smtp_server, dovecot_without_move: DovecotServer) -> None:
    """Without MOVE the bounce is copied, flagged and expunged by UID; the other mail stays."""
    _setup(project, smtp_server, dovecot_without_move, "imaps")
    code, out = _cli("bounces", "process", str(project))
    assert code == 0 and "1 moved" in out, out
    assert len(subjects(dovecot_without_move, "harkat-processed")) == 1
    assert [s.split(" -> ")[0] for s in subjects(dovecot_without_move, "INBOX")] == ["Re: Mohamed Harkat"]
