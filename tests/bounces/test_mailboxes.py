"""Local bounce mailboxes: mail that arrives between reading and moving is never lost."""

from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path

import pytest

from harkat_mail.bounces.mailboxes import LocalMailbox, Returned, open_mailbox
from harkat_mail.errors import BounceSourceError

from . import dsn


def _read(box: LocalMailbox) -> list[Returned]:
    async def go() -> list[Returned]:
        return [item async for item in box.messages()]

    return asyncio.run(go())


def test_mbox_keeps_mail_delivered_between_read_and_move(tmp_path: Path) -> None:
    """A message appended (under the mbox lock, as a delivery agent does) after the read stays."""
    path = tmp_path / "bounces.mbox"
    source = mailbox.mbox(path)
    source.add(dsn.auto_reply("a@example.org"))
    source.add(dsn.personal("b@example.org"))
    source.close()
    box = LocalMailbox(path, "harkat-processed")
    items = _read(box)
    late = mailbox.mbox(path)
    late.lock()
    late.add(dsn.auto_reply("late@example.org"))
    late.flush()
    late.unlock()
    late.close()
    assert asyncio.run(box.move(items[:1])) == 1
    kept = sorted(str(m["To"]) for m in mailbox.mbox(path))
    assert kept == ["b@example.org", "late@example.org"]
    assert [str(m["To"]) for m in mailbox.mbox(tmp_path / "bounces.mbox.harkat-processed")] == [
        "a@example.org"
    ]


def test_maildir_move_keeps_new_mail_and_never_overwrites(tmp_path: Path) -> None:
    """Moving leaves mail that arrived after the read, and a name already taken is left alone."""
    folder = mailbox.Maildir(tmp_path / "Maildir")
    folder.add(dsn.auto_reply("a@example.org"))
    box = LocalMailbox(tmp_path / "Maildir", "harkat-processed")
    items = _read(box)
    folder.add(dsn.personal("b@example.org"))
    assert asyncio.run(box.move(items)) == 1
    assert asyncio.run(box.move(items)) == 0  # moved already: nothing to do, nothing lost
    assert [str(m["To"]) for m in mailbox.Maildir(tmp_path / "Maildir")] == ["b@example.org"]
    processed = mailbox.Maildir(tmp_path / "Maildir" / ".harkat-processed")
    assert [str(m["To"]) for m in processed] == ["a@example.org"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("pop3://user@host", "expected a path, or an imaps:// or imap:// URL"),
        ("imaps://user:secret@host/INBOX", "never put the password in the URL"),
        ("imaps://host/INBOX", "expected imaps://user@host"),
        ("imaps://user@host:99999/INBOX", "not a valid IMAP URL"),
        ("imaps://user@[::1/INBOX", "not a valid IMAP URL"),
    ],
)
def test_bad_mailbox_addresses_are_refused(where: str, message: str) -> None:
    """A mailbox that is no path or IMAP URL, or an URL with a password, is one clear error."""
    with pytest.raises(BounceSourceError, match=message):
        open_mailbox(where, "harkat-processed")
