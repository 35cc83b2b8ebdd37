"""Read-only iteration over returned mail: one file, a folder of .eml files, a Maildir, an mbox."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from ..errors import BounceSourceError


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def is_mbox(path: Path) -> bool:
    if not path.is_file():  # a FIFO or device would block or never end
        return False
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def _plain(item: Path) -> bool:
    """A regular file of the folder itself: symbolic links (which may point anywhere on the
    machine), subfolders, FIFOs and dot-files are not mail and are never opened."""
    return not item.is_symlink() and item.is_file() and not item.name.startswith(".")


def _read(item: Path) -> bytes:
    try:
        return item.read_bytes()
    except OSError as exc:
        raise BounceSourceError(f"{item}: cannot read ({exc.strerror or exc})") from exc


def iter_messages(path: Path | str) -> Iterator[tuple[str, bytes]]:
    """(source, bytes) for each message under ``path``; changes nothing.

    A directory with cur/, new/ and tmp/ is a Maildir; another directory holds .eml files; a file
    starting "From " is an mbox (sources ``path:index``, from 1); any other file is one message.
    """
    path = Path(path)
    try:
        if is_maildir(path):
            for sub in ("new", "cur"):
                for item in sorted((path / sub).iterdir()):
                    if _plain(item):
                        yield str(item), _read(item)
        elif path.is_dir():
            for item in sorted(path.glob("*.eml")):
                if _plain(item):
                    yield str(item), _read(item)
        elif not path.exists():
            raise BounceSourceError(f"{path}: no such file or directory")
        elif not path.is_file():
            raise BounceSourceError(f"{path}: not a file or folder of mail")
        elif is_mbox(path):
            box = mailbox.mbox(path, create=False)
            try:
                for index, key in enumerate(box.iterkeys(), start=1):
                    yield f"{path}:{index}", box.get_bytes(key)
            finally:
                box.close()
        else:
            yield str(path), _read(path)
    except OSError as exc:
        raise BounceSourceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
