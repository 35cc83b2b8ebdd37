"""Bounce mailboxes that can put processed mail aside: Maildir, mbox, .eml folder, IMAP.

``open_mailbox`` takes a path or an ``imaps://``/``imap://`` URL. ``messages()`` reads every
message without changing anything; ``move(items)`` puts the given ones in the processed folder
(``harkat-processed`` by default). Nothing is ever deleted:

- a Maildir: into its Maildir++ subfolder ``.harkat-processed`` (one rename per message, the
  file name and its flags kept), which IMAP servers such as Dovecot show as a folder;
- a folder of .eml files, or one file: into the subfolder ``harkat-processed`` beside them;
- an mbox: appended to the sibling mbox ``NAME.harkat-processed`` (written and synced
  first), then removed from the source, both under the mbox locks (fcntl and dot-lock, as
  mail delivery agents take them) so a message delivered meanwhile is kept;
- IMAP: see imap.py.
"""

from __future__ import annotations

import hashlib
import mailbox
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import BounceSourceError
from .readers import is_maildir, is_mbox, iter_messages


@dataclass(frozen=True)
class Returned:
    """One message read from a bounce mailbox."""

    source: str  # file path, path:index (mbox) or URL:UID (IMAP), for reports
    data: bytes
    handle: str  # what ``move`` needs to find it again

    @property
    def digest(self) -> str:
        """The message's identity for idempotence: SHA-256 of its bytes."""
        return hashlib.sha256(self.data).hexdigest()


class Mailbox(Protocol):
    """Where bounces are read from and processed ones put aside."""

    where: str
    processed: str

    def messages(self) -> AsyncIterator[Returned]: ...

    async def move(self, items: Sequence[Returned]) -> int:
        """Move ``items`` to the processed folder; how many were moved."""
        ...

    async def close(self) -> None: ...


class LocalMailbox:
    """A Maildir, an mbox file, a folder of .eml files, or one message file."""

    def __init__(self, path: Path, processed: str) -> None:
        if not path.exists():
            raise BounceSourceError(f"{path}: no such file or directory")
        if "/" in processed or processed in ("", ".", ".."):
            raise BounceSourceError(f"bounces.processed: {processed!r} is no folder name")
        self.path = path
        self.where = str(path)
        self.processed = processed
        self.kind = (
            "maildir"
            if is_maildir(path)
            else "folder"
            if path.is_dir()
            else "mbox"
            if is_mbox(path)
            else "file"
        )

    async def messages(self) -> AsyncIterator[Returned]:
        for source, data in iter_messages(self.path):
            handle = source if self.kind != "mbox" else hashlib.sha256(data).hexdigest()
            yield Returned(source, data, handle)

    async def move(self, items: Sequence[Returned]) -> int:
        if not items:
            return 0
        try:
            if self.kind == "maildir":
                return self._move_files(items, self._maildir_folder())
            if self.kind == "mbox":
                return self._move_mbox(items)
            folder = (self.path if self.kind == "folder" else self.path.parent) / self.processed
            folder.mkdir(exist_ok=True)
            return self._move_files(items, folder)
        except (OSError, mailbox.Error) as exc:
            raise BounceSourceError(f"{self.path}: cannot move processed mail ({exc})") from exc

    def _maildir_folder(self) -> Path:
        """The Maildir++ subfolder, created as Maildir++ readers expect it."""
        folder = self.path / f".{self.processed}"
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "maildirfolder").touch()
        return folder / "cur"

    def _move_files(self, items: Sequence[Returned], folder: Path) -> int:
        moved = 0
        for item in items:
            source = Path(item.handle)
            name = source.name
            if self.kind == "maildir" and source.parent.name == "new" and ":" not in name:
                name += ":2,"  # what a file in cur/ carries (Maildir: "seen" by no one yet)
            target = folder / name
            if target.exists() or not source.exists():
                continue  # never overwrite; gone already (moved by another reader)
            os.rename(source, target)  # same file system: atomic, nothing copied or lost
            moved += 1
        return moved

    def _move_mbox(self, items: Sequence[Returned]) -> int:
        wanted = {item.handle for item in items}
        source = mailbox.mbox(self.path, create=False)
        target_path = self.path.with_name(f"{self.path.name}.{self.processed}")
        target = mailbox.mbox(target_path)
        source.lock()
        try:
            target.lock()
            try:
                keys = [
                    key
                    for key in source.iterkeys()
                    if hashlib.sha256(source.get_bytes(key)).hexdigest() in wanted
                ]
                for key in keys:  # the copy is safe on disk before the source loses them
                    target.add(source.get_message(key))
                target.flush()
                _fsync(target_path)
            finally:
                target.unlock()
            for key in keys:
                source.remove(key)
            source.flush()  # rewrites the file under the lock; refuses if it changed unseen
        finally:
            source.unlock()
            source.close()
            target.close()
        return len(keys)

    async def close(self) -> None:
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_mailbox(
    where: str,
    processed: str,
    password_env: str | None = None,
    ca_file: Path | None = None,
    *,
    readonly: bool = False,
    names: tuple[str, str] = ("bounces.password_env", "bounces.ca_file"),
) -> Mailbox:
    """The mailbox at a path or an ``imaps://`` / ``imap://`` URL (not yet connected).

    ``readonly``: IMAP folders are EXAMINEd and ``move`` refuses; ``names``: the settings
    that give the password variable and the CA file, as error messages should name them."""
    scheme = where.partition("://")[0].lower() if "://" in where else ""
    if scheme in ("imap", "imaps"):
        from .imap import ImapMailbox

        return ImapMailbox(
            where, processed, password_env, ca_file, readonly=readonly, names=names
        )
    if scheme:
        raise BounceSourceError(f"{where}: expected a path, or an imaps:// or imap:// URL")
    return LocalMailbox(Path(where), processed)
