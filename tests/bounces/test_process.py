"""`bounces process` on local mailboxes: attribution, moves, idempotence, refusals at RCPT."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

from ..campaign.helpers import edit
from . import dsn

BOUNCES = "bounces@cupw.example.org"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _sent(project: Path, smtp_server, **rules) -> list:
    edit(project, "smtp: local\n", f"smtp: local\nbounces: {{address: {BOUNCES}}}\n")
    server, handler = smtp_server(**rules)
    _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert {m.mail_from for m in handler.messages} == {BOUNCES}
    return sorted(handler.messages, key=lambda m: m.rcpt_tos[0])


def _states(project: Path) -> dict[str, tuple[str, str]]:
    code, out = _cli("report", str(project), "--format", "json")
    assert code == 0, out
    return {
        r["email"].lower(): (r["state"], r["bounce_class"])
        for r in json.loads(out)
        if r["state"] != "skipped"
    }


def _returned(sent: list) -> dict[str, bytes]:
    """By Message-ID (recipient renamed by a forwarder), by address alone, and two to keep."""
    by_id, by_address = sent[0], sent[1]
    return {
        "by-id": dsn.dsn(BOUNCES, "alias@forward.example.net", "5.1.1", "550 5.1.1 User unknown",
                         original_id=by_id.message["Message-ID"]),
        "by-address": dsn.complaint(BOUNCES, by_address.rcpt_tos[0]),
        "stranger": dsn.dsn(BOUNCES, "stranger@example.net", "5.1.1", "550 5.1.1 User unknown"),
        "personal": dsn.personal(BOUNCES),
    }


def _check_applied(project: Path, sent: list, out: str) -> None:
    assert "4 messages read" in out and "2 moved" in out, out
    assert "stranger@example.net is no member of sept2018" in out
    assert "not a bounce, complaint or auto-reply" in out
    states = _states(project)
    assert states[sent[0].rcpt_tos[0].lower()] == ("bounced", "hard")
    assert states[sent[1].rcpt_tos[0].lower()] == ("complained", "complaint")
    assert list(states.values()).count(("sent", "")) == len(sent) - 2


def test_maildir_moves_applied_mail_to_its_processed_subfolder(project: Path, smtp_server, tmp_path: Path) -> None:
    """A Maildir's applied reports go to .harkat-processed; strangers and personal mail stay."""
    sent = _sent(project, smtp_server)
    box = mailbox.Maildir(tmp_path / "Maildir")
    for data in _returned(sent).values():
        box.add(data)
    code, out = _cli("bounces", "process", str(project), "--from", str(tmp_path / "Maildir"))
    assert code == 0, out
    _check_applied(project, sent, out)
    assert len(mailbox.Maildir(tmp_path / "Maildir")) == 2
    processed = mailbox.Maildir(tmp_path / "Maildir" / ".harkat-processed")
    assert len(processed) == 2
    before = _states(project)
    code, out = _cli("bounces", "process", str(project), "--from", str(tmp_path / "Maildir"))
    assert code == 0 and "applied: none" in out and "0 moved" in out
    assert _states(project) == before and len(processed) == 2


def test_mbox_keeps_unprocessed_and_appends_processed_to_a_sibling(project: Path, smtp_server, tmp_path: Path) -> None:
    """An mbox keeps what was not applied; the applied go to NAME.harkat-processed, none lost."""
    sent = _sent(project, smtp_server)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    returned = _returned(sent)
    for data in returned.values():
        box.add(data)
    box.close()
    code, out = _cli("bounces", "process", str(project), "--from", str(path))
    assert code == 0, out
    _check_applied(project, sent, out)
    left = [m["To"] for m in mailbox.mbox(path)]
    moved = [m["Subject"] for m in mailbox.mbox(tmp_path / "bounces.mbox.harkat-processed")]
    assert len(left) == 2 and len(moved) == 2
    assert sorted(moved) == ["Abuse report", "Undelivered Mail Returned to Sender"]
    code, out = _cli("bounces", "process", str(project), "--from", str(path))
    assert code == 0 and "2 messages read" in out and "0 moved" in out


def test_eml_folder_moves_applied_files_to_a_subfolder(project: Path, smtp_server, tmp_path: Path) -> None:
    """A folder of .eml files: applied ones move into harkat-processed/ beside the rest."""
    sent = _sent(project, smtp_server)
    folder = tmp_path / "returned"
    folder.mkdir()
    for name, data in _returned(sent).items():
        (folder / f"{name}.eml").write_bytes(data)
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0, out
    _check_applied(project, sent, out)
    assert sorted(p.name for p in folder.glob("*.eml")) == ["personal.eml", "stranger.eml"]
    assert sorted(p.name for p in (folder / "harkat-processed").iterdir()) == [
        "by-address.eml",
        "by-id.eml",
    ]


def test_another_campaigns_bounce_stays_in_the_mailbox(project: Path, smtp_server, tmp_path: Path) -> None:
    """A report whose Message-ID another campaign made is left for it, though its address is ours."""
    sent = _sent(project, smtp_server)
    member = sent[0].rcpt_tos[0]
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "other.eml").write_bytes(
        dsn.dsn(BOUNCES, member, "5.1.1", "550 5.1.1 User unknown",
                original_id=f"<{'0123abcd' * 4}.may2019@cupw.example.org>")
    )
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0 and "for another campaign" in out and "0 moved" in out
    assert (folder / "other.eml").exists()
    assert _states(project)[member.lower()] == ("sent", "")


def test_soft_bounces_suppress_only_at_the_threshold(project: Path, smtp_server, tmp_path: Path) -> None:
    """With soft_threshold 1 a full mailbox suppresses; a block never does, even at a 5xx."""
    sent = _sent(project, smtp_server)
    edit(project, f"bounces: {{address: {BOUNCES}}}", f"bounces: {{address: {BOUNCES}, soft_threshold: 1}}")
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "full.eml").write_bytes(dsn.dsn(BOUNCES, sent[0].rcpt_tos[0], "5.2.2", "552 5.2.2 Mailbox full"))
    (folder / "block.eml").write_bytes(
        dsn.dsn(BOUNCES, sent[1].rcpt_tos[0], "5.7.1", "550 5.7.1 Message rejected as spam")
    )
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0, out
    suppression = (project.parent.parent / "suppression.txt").read_text().lower()
    assert sent[0].rcpt_tos[0].lower() in suppression
    assert sent[1].rcpt_tos[0].lower() not in suppression
    assert "reputation" not in out  # one block is below the default block_alert of 10


def test_hard_refusal_at_rcpt_is_suppressed_and_a_block_is_not(project: Path, smtp_server) -> None:
    """A 550 5.1.1 at RCPT during the send is a hard bounce (suppressed); a 550 5.7.1 is not."""
    edit(project, "smtp: local\n", f"smtp: local\nbounces: {{address: {BOUNCES}}}\n")
    server, _ = smtp_server(
        nadia=("rcpt", "550 5.1.1 <x>: Recipient address rejected: User unknown"),
        karim=("rcpt", "550 5.7.1 Client host rejected: listed at a DNS blocklist"),
    )
    code, out = _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 1, out
    states = _states(project)
    nadia = {e: s for e, s in states.items() if "nadia" in e}
    karim = {e: s for e, s in states.items() if "karim" in e}
    assert nadia and set(nadia.values()) == {("bounced", "hard")}
    assert karim and set(karim.values()) == {("failed", "")}
    suppression = (project.parent.parent / "suppression.txt").read_text().lower()
    assert all(e in suppression for e in nadia) and not any(e in suppression for e in karim)


@pytest.mark.parametrize(
    ("yaml", "args", "message"),
    [
        (f"bounces: {{address: {BOUNCES}}}\n", (), "bounces.mailbox is not set"),
        ("", ("--from", "/nonexistent/box"), "/nonexistent/box: no such file or directory"),
        (
            f"bounces: {{address: {BOUNCES}, mailbox: 'imaps://u@127.0.0.1:1/INBOX'}}\n",
            (),
            "set bounces.password_env",
        ),
    ],
)
def test_bad_mailbox_is_one_line_and_exit_2(project: Path, smtp_server, yaml: str, args: tuple[str, ...], message: str) -> None:
    """A missing mailbox setting, path or IMAP password is one line naming it, exit 2."""
    server, _ = smtp_server()
    edit(project, "smtp: local\n", f"smtp: local\n{yaml}")
    _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    code, out = _cli("bounces", "process", str(project), *args)
    assert code == 2 and message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_verp_token_in_the_returned_headers_attributes_a_rewritten_report(project: Path, smtp_server, tmp_path: Path) -> None:
    """A report sent to the plain bounce address still finds its member by the Return-Path it returns."""
    edit(project, "smtp: local\n", f"smtp: local\nbounces: {{address: {BOUNCES}, verp: true}}\n")
    server, handler = smtp_server()
    assert _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")[0] == 0
    member = sorted(handler.messages, key=lambda m: m.rcpt_tos[0])[0]
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "rewritten.eml").write_bytes(
        dsn.dsn(BOUNCES, "alias@forward.example.net", "5.1.1", "550 5.1.1 User unknown",
                return_path=member.mail_from.upper())
    )
    forged = member.mail_from[:9] + ("a" if member.mail_from[9] != "a" else "b") + member.mail_from[10:]
    (folder / "forged.eml").write_bytes(
        dsn.dsn(BOUNCES, "alias2@forward.example.net", "5.1.1", "550 5.1.1 User unknown", return_path=forged)
    )
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0 and "1 moved" in out, out
    assert "alias2@forward.example.net has no VERP token or Message-ID of sept2018" in out
    assert _states(project)[member.rcpt_tos[0].lower()] == ("bounced", "hard")
