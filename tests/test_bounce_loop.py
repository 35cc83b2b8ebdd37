"""The whole loop: send with VERP, bounces come back to the envelope senders, the next send
skips the dead addresses and the complainer but not the soft bounces or the blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

from .bounces import dsn
from .bounces.imaphelp import append, subjects
from .campaign.helpers import edit
from .dovecotserver import DovecotServer

pytestmark = [pytest.mark.slow, pytest.mark.external]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _bounces_yaml(project: Path, server: DovecotServer) -> None:
    edit(
        project,
        "smtp: local\n",
        "smtp: local\n"
        "bounces:\n"
        "  address: bounces@cupw.example.org\n"
        "  verp: true\n"
        f"  mailbox: {server.url('imaps')}\n"
        "  password_env: HARKAT_TEST_IMAP_PASSWORD\n"
        f"  ca_file: {server.ca_file}\n"
        "  block_alert: 1\n",
    )


def _states(project: Path) -> dict[str, tuple[str, str, str]]:
    code, out = _cli("report", str(project), "--format", "json")
    assert code == 0, out
    return {
        row["email"].lower(): (row["state"], row["bounce_class"], row["bounce_status"])
        for row in json.loads(out)
        if row["state"] != "skipped"  # a duplicate row of the same address
    }


def test_bounces_protect_the_next_send(project: Path, smtp_server, dovecot: DovecotServer) -> None:
    """Hard bounces and the complainer are skipped by the next campaign; soft and blocked are not."""
    _bounces_yaml(project, dovecot)
    server, handler = smtp_server()
    code, out = _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    sent = sorted(handler.messages, key=lambda m: m.rcpt_tos[0])
    hard, soft_full, soft_delayed, blocked, complainer = sent[:5]
    sender = {m.rcpt_tos[0].lower(): m.mail_from for m in sent}
    # The hard bounce names a forwarding alias, not the member: only its VERP token says who.
    forged = hard.mail_from[:-20] + ("a" if hard.mail_from[-20] != "a" else "b") + hard.mail_from[-19:]
    append(
        dovecot,
        dsn.dsn(hard.mail_from, "old-alias@forward.example.net", "5.1.1",
                "550 5.1.1 <old-alias@forward.example.net>: Recipient address rejected: User unknown"),
        dsn.dsn(soft_full.mail_from, soft_full.rcpt_tos[0], "5.2.2", "552 5.2.2 Mailbox full; over quota"),
        dsn.dsn(soft_delayed.mail_from, soft_delayed.rcpt_tos[0], "4.2.2", "452 4.2.2 Mailbox full",
                action="delayed"),
        dsn.dsn(blocked.mail_from, blocked.rcpt_tos[0], "5.7.1",
                "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"),
        dsn.complaint(complainer.mail_from, complainer.rcpt_tos[0]),
        dsn.auto_reply(sent[5].mail_from),
        dsn.personal("national@cupw.example.org"),
        dsn.dsn(forged, "nobody@forward.example.net", "5.1.1", "550 5.1.1 User unknown"),
    )

    code, out = _cli("bounces", "process", str(project))
    assert code == 0, out
    assert "8 messages read" in out and "6 moved to harkat-processed" in out
    assert out.count("left in the mailbox") == 2  # the personal reply and the forged token
    assert "reputation or authentication problem" in out  # one block reaches block_alert: 1
    states = _states(project)
    assert states[hard.rcpt_tos[0].lower()] == ("bounced", "hard", "5.1.1")
    assert states[soft_full.rcpt_tos[0].lower()] == ("bounced", "soft", "5.2.2")
    assert states[soft_delayed.rcpt_tos[0].lower()] == ("bounced", "soft", "4.2.2")
    assert states[blocked.rcpt_tos[0].lower()] == ("bounced", "block", "5.7.1")
    assert states[complainer.rcpt_tos[0].lower()][:2] == ("complained", "complaint")
    assert states[sent[5].rcpt_tos[0].lower()][0] == "sent"  # an auto-reply changes nothing
    inbox = subjects(dovecot, "INBOX")
    assert len(inbox) == 2 and any("Re: Mohamed Harkat" in s for s in inbox)
    assert len(subjects(dovecot, "harkat-processed")) == 6

    code, status = _cli("status", str(project))
    assert code == 0 and "bounced" in status and "complained" in status
    assert all(f"{kind}" in status for kind in ("hard", "soft", "block"))

    # Processing again changes nothing: same rows, same folders, nothing applied.
    code, again = _cli("bounces", "process", str(project))
    assert code == 0, again
    assert "2 messages read" in again and "applied: none" in again and "0 moved" in again
    assert _states(project) == states
    assert len(subjects(dovecot, "harkat-processed")) == 6

    suppression = (project.parent.parent / "suppression.txt").read_text()
    for member in (hard, complainer):
        assert member.rcpt_tos[0].lower() in suppression.lower()
    for member in (soft_full, soft_delayed, blocked):
        assert member.rcpt_tos[0].lower() not in suppression.lower()

    # The next appeal, a new campaign on the same list.
    text = project.read_text().replace("name: sept2018", "name: oct2018")
    text = text.replace("outbox/sept2018", "outbox/oct2018").replace("previews/sept2018", "previews/oct2018")
    following = project.with_name("oct2018.yaml")
    following.write_text(text)
    server2, handler2 = smtp_server()
    code, out = _cli("send", str(following), "--smtp", f"smtp://127.0.0.1:{server2.port}", "--yes")
    assert code == 0, out
    received = {m.rcpt_tos[0].lower() for m in handler2.messages}
    assert received == set(sender) - {hard.rcpt_tos[0].lower(), complainer.rcpt_tos[0].lower()}
    for member in (soft_full, soft_delayed, blocked):
        assert member.rcpt_tos[0].lower() in received


def test_postgres_send_log_takes_the_suppressions_for_every_machine(
    project: Path, smtp_server, postgres_db: str, tmp_path: Path
) -> None:
    """With a PostgreSQL send log, hard bounces go to its shared suppression: the next send skips them."""
    edit(project, "send_log: ../outbox/sept2018.sendlog.sqlite", f"send_log: {postgres_db}")
    edit(project, "smtp: local\n", "smtp: local\nbounces: {address: bounces@cupw.example.org, block_alert: 50%}\n")
    server, handler = smtp_server()
    code, out = _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    sent = sorted(handler.messages, key=lambda m: m.rcpt_tos[0])
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "hard.eml").write_bytes(
        dsn.dsn("bounces@cupw.example.org", "alias@forward.example.net", "5.1.1",
                "550 5.1.1 User unknown", original_id=sent[0].message["Message-ID"])
    )
    (folder / "block.eml").write_bytes(
        dsn.dsn("bounces@cupw.example.org", sent[1].rcpt_tos[0], "5.7.1", "554 5.7.1 rejected as spam")
    )
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0 and "1 addresses suppressed" in out and "2 moved" in out, out
    assert "reputation" not in out  # 1 block of many sent is under 50%
    assert not (project.parent.parent / "suppression.txt").exists()

    text = project.read_text().replace("name: sept2018", "name: oct2018")
    following = project.with_name("oct2018.yaml")
    following.write_text(text.replace("outbox/sept2018", "outbox/oct2018"))
    server2, handler2 = smtp_server()
    code, out = _cli("send", str(following), "--smtp", f"smtp://127.0.0.1:{server2.port}", "--yes")
    assert code == 0, out
    received = {m.rcpt_tos[0] for m in handler2.messages}
    assert sent[0].rcpt_tos[0] not in received and sent[1].rcpt_tos[0] in received
    assert len(received) == len(sent) - 1
