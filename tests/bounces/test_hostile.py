"""Hostile returned mail: forged reports, control characters, links, FIFOs and huge messages."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from click.testing import CliRunner

from harkat_mail.bounces import classify
from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.mail.tokens import secret_from_env
from harkat_mail.mail.verp import Verp

from ..campaign.helpers import edit
from . import dsn

BOUNCES = "bounces@cupw.example.org"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _send(project: Path, smtp_server, bounces: str) -> list:
    edit(project, "smtp: local\n", f"smtp: local\nbounces: {bounces}\n")
    server, handler = smtp_server()
    code, out = _cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    return sorted(handler.messages, key=lambda m: m.rcpt_tos[0])


def _forged(member: str) -> bytes:
    """Anyone's plain text to the plain bounce address, claiming a member's mailbox is gone."""
    return (
        f"From: someone@elsewhere.example\r\nTo: {BOUNCES}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n\r\n"
        f"<{member}>: 550 5.1.1 User unknown\r\n"
    ).encode()


def _report_rows(project: Path) -> dict[str, dict[str, str]]:
    code, out = _cli("report", str(project), "--format", "csv")
    assert code == 0, out
    return {r["email"].lower(): r for r in csv.DictReader(io.StringIO(out)) if r["state"] != "skipped"}


def test_with_verp_a_report_without_token_or_message_id_suppresses_nobody(
    project: Path, smtp_server, tmp_path: Path
) -> None:
    """With verp: true, a forged text naming a member by address alone is left and reported."""
    sent = _send(project, smtp_server, f"{{address: {BOUNCES}, verp: true}}")
    member = sent[0].rcpt_tos[0]
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "forged.eml").write_bytes(_forged(member))
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0 and "0 addresses suppressed" in out and "0 moved" in out, out
    assert f"{member.lower()} has no VERP token or Message-ID of sept2018" in out
    assert (folder / "forged.eml").exists()
    assert _report_rows(project)[member.lower()]["state"] == "sent"
    assert not (project.parent.parent / "suppression.txt").exists()


def test_another_campaigns_verp_token_stays_in_the_mailbox(
    project: Path, smtp_server, tmp_path: Path
) -> None:
    """A valid VERP token of another campaign, naming a member of ours, is left for that campaign."""
    sent = _send(project, smtp_server, f"{{address: {BOUNCES}, verp: true}}")
    member = sent[0].rcpt_tos[0]
    campaign = load_campaign(project)
    verp = Verp(BOUNCES, secret_from_env(campaign.unsubscribe.secret_env, False))
    theirs = verp.address("may2019", member.lower())
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "other.eml").write_bytes(dsn.dsn(theirs, member, "5.1.1", "550 5.1.1 User unknown"))
    code, out = _cli("bounces", "process", str(project), "--from", str(folder))
    assert code == 0 and "0 moved" in out and "other.eml: for another campaign" in out, out
    assert _report_rows(project)[member.lower()]["state"] == "sent"


def test_control_characters_and_formulas_in_a_diagnostic_stay_harmless(
    project: Path, smtp_server, tmp_path: Path
) -> None:
    """A diagnostic with escapes, a bell and a leading '=' is one clean line in check, the log and CSV."""
    sent = _send(project, smtp_server, f"{{address: {BOUNCES}}}")
    member = sent[0].rcpt_tos[0]
    hostile = '=HYPERLINK("http://evil.example","x") 550 5.1.1 User unknown \x1b[31mred\x1b[0m\x07\x00 end'
    folder = tmp_path / "returned"
    folder.mkdir()
    (folder / "hostile.eml").write_bytes(dsn.dsn(BOUNCES, member, "5.1.1", hostile))
    code, out = _cli("bounces", "check", str(folder), "--format", "json")
    diagnostic = json.loads(out)["recipients"][0]["diagnostic"]
    assert code == 0 and not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in diagnostic)
    assert "\x1b" not in _cli("bounces", "check", str(folder))[1]
    assert _cli("bounces", "process", str(project), "--from", str(folder))[0] == 0
    row = _report_rows(project)[member.lower()]
    assert row["state"] == "bounced" and row["bounce_class"] == "hard"
    assert row["bounce_diagnostic"].startswith("'=HYPERLINK") and "\x1b" not in row["bounce_diagnostic"]


def test_links_subfolders_and_fifos_in_a_maildir_are_never_read_or_moved(tmp_path: Path) -> None:
    """A symlink out of the Maildir, a folder and a FIFO in new/ are skipped; the real message is read."""
    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(dsn.dsn(BOUNCES, "outside@example.org", "5.1.1", "550 5.1.1 User unknown"))
    (box / "new" / "1.link").symlink_to(secret)
    (box / "new" / "2.dir").mkdir()
    os.mkfifo(box / "new" / "3.fifo")
    (box / "new" / "4.real").write_bytes(dsn.auto_reply(BOUNCES))
    code, out = _cli("bounces", "check", str(box))
    assert code == 0 and out.splitlines() == [f"{box}/new/4.real: auto-reply"], out


def test_a_fifo_given_as_the_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """bounces check on a FIFO refuses at once with one line (never blocks waiting on it)."""
    fifo = tmp_path / "box.eml"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["bounces", "check", str(fifo)])
    assert result.exit_code == 2 and "not a file or folder of mail" in result.stderr


def test_a_huge_report_is_classified_from_its_first_megabytes() -> None:
    """A 40 MB bounce (its original returned whole) still gives its verdict from its own parts."""
    data = dsn.dsn(BOUNCES, "gone@example.org", "5.1.1", "550 5.1.1 User unknown")
    verdict = classify(data + b"A" * (40 << 20))
    assert verdict.kind == "bounce" and verdict.recipients[0].bounce_class == "hard"
