"""`harkat-mail bounces check`: files, .eml folders, Maildirs and mbox files, read-only."""

from __future__ import annotations

import json
import mailbox
import shutil
from pathlib import Path

from click.testing import CliRunner

from harkat_mail.cli import main

from .corpus import ROOT

HARD = ROOT / "postfix" / "flufl-postfix_01.eml"  # 550 5.1.1 User unknown
BLOCK = ROOT / "yahoo" / "sisimai-rhost-yahooinc-01.eml"  # 554 5.7.9 policy
COMPLAINT = ROOT / "arf" / "sisimai-arf-23.eml"
AWAY = ROOT / "autoreply" / "sisimai-rfc3834-01.eml"


def _check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["bounces", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_json_lines_for_a_maildir_change_nothing(tmp_path: Path) -> None:
    """A Maildir's new/ and cur/ messages each give one JSON object; the Maildir is untouched."""
    box = mailbox.Maildir(tmp_path / "Maildir")
    for sample in (HARD, BLOCK, COMPLAINT, AWAY):
        box.add(mailbox.MaildirMessage(sample.read_bytes()))
    box.close()
    before = _snapshot(tmp_path)
    code, out, _ = _check(str(tmp_path / "Maildir"), "--format", "json")
    assert code == 0 and _snapshot(tmp_path) == before
    objects = [json.loads(line) for line in out.splitlines()]
    assert all(set(o) == {"source", "kind", "recipients"} for o in objects)
    assert all(Path(o["source"]).parent.name == "new" for o in objects)
    by_kind = sorted((o["kind"], [(r["address"], r["class"], r["action"]) for r in o["recipients"]]) for o in objects)
    assert by_kind == [
        ("auto-reply", []),
        ("bounce", [("kijitora@aol.example.jp", "block", "none")]),
        ("bounce", [("xxxxx@local.ie", "hard", "suppress")]),
        ("complaint", [("kijitora@example.com", "complaint", "suppress")]),
    ]
    hard = next(o for o in objects if o["recipients"] and o["recipients"][0]["class"] == "hard")
    assert set(hard["recipients"][0]) == {"address", "status", "class", "action", "diagnostic"}
    assert hard["recipients"][0]["status"] == "5.1.1" and "User unknown" in hard["recipients"][0]["diagnostic"]


def test_mbox_sources_are_path_and_index(tmp_path: Path) -> None:
    """An mbox file's messages are numbered path:1, path:2 in the output."""
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for sample in (HARD, AWAY):
        box.add(mailbox.mboxMessage(sample.read_bytes()))
    box.close()
    code, out, _ = _check(str(path), "--format", "json")
    objects = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(o["source"], o["kind"]) for o in objects] == [(f"{path}:1", "bounce"), (f"{path}:2", "auto-reply")]


def test_a_real_mbox_of_two_bounces(tmp_path: Path) -> None:
    """A Postfix bounce and its postmaster copy, as filed in an mbox, read as two blocks."""
    path = tmp_path / "returned"
    shutil.copy(ROOT / "mbox" / "sisimai-rhost-cox-01.mbox", path)
    code, out, _ = _check(str(path), "--format", "json")
    objects = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [o["source"] for o in objects] == [f"{path}:1", f"{path}:2"]
    for o in objects:
        assert [(r["address"], r["status"], r["class"]) for r in o["recipients"]] == [
            ("recipient55@cox.net", "5.1.0", "block")
        ]


def test_text_lines_for_a_folder_and_a_file(tmp_path: Path) -> None:
    """A folder of .eml files and a single file give one readable line per message."""
    folder = tmp_path / "eml"
    folder.mkdir()
    shutil.copy(HARD, folder / "a.eml")
    shutil.copy(BLOCK, folder / "b.eml")
    (folder / "notes.txt").write_text("not a message")
    single = tmp_path / "one.msg"
    shutil.copy(COMPLAINT, single)
    code, out, _ = _check(str(folder), str(single))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].startswith(f"{folder / 'a.eml'}: bounce: xxxxx@local.ie hard -> suppress 5.1.1 (")
    assert lines[1].startswith(f"{folder / 'b.eml'}: bounce: kijitora@aol.example.jp block -> none 5.7.9")
    assert lines[2] == f"{single}: complaint: kijitora@example.com complaint -> suppress (feedback report: abuse)"


def test_missing_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A path that does not exist is named in one error line, exit code 2, no traceback."""
    code, out, err = _check(str(tmp_path / "nowhere"))
    assert code == 2 and out == ""
    assert err.strip() == f"harkat-mail: {tmp_path / 'nowhere'}: no such file or directory"
