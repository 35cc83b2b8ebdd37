"""Opening the send-log file: created atomically, refused when it is no send log, read-only.

A missing log means "nobody was sent anything yet", so anything that could be mistaken for
one (an empty file, another file, a half-created log) must be refused, never started over:
starting over sends everyone the message again.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import SendLogError
from .schema import SCHEMA_VERSION, schema_version, upgrade

_HEADER = b"SQLite format 3\x00"


P = ParamSpec("P")
R = TypeVar("R")


def guarded(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """A method of an object with ``path`` reports SQLite failures as one line naming it."""

    @wraps(method)
    def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with sqlite_errors(self.path):
            return method(self, *args, **kwargs)

    return wrapper


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 and OS errors into one SendLogError line that names the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SendLogError(describe(path, exc)) from None
    except OSError as exc:
        raise SendLogError(f"{path}: cannot open the send log ({_one_line(str(exc))})") from None


def describe(path: Path, exc: sqlite3.Error) -> str:
    """What a SQLite error means for the user, and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code, without its detail
    what = _one_line(str(exc))
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"{path}: the send log is damaged ({what}); restore it from a backup"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"{path}: the send log is busy ({what}): another harkat-mail is using it; "
            "run again when it has finished"
        )
    if code == sqlite3.SQLITE_FULL:
        return f"{path}: no room to write the send log ({what}); free some disk space"
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return (
            f"{path}: cannot open or write the send log ({what}); check the permissions of "
            "the file and its folder"
        )
    if code == sqlite3.SQLITE_IOERR:
        return f"{path}: cannot read or write the send log ({what})"
    return f"{path}: send log error ({what})"


def _uri(path: Path, query: str) -> str:
    return f"{path.absolute().as_uri()}?{query}"  # as_uri escapes '?', '#' and '%'


def _check_header(path: Path) -> None:
    """Refuse an existing file that SQLite would otherwise take for an empty database."""
    with path.open("rb") as f:
        head = f.read(len(_HEADER))
    if not head:
        raise SendLogError(
            f"{path}: not a usable send log: an empty file (0 bytes), so it cannot tell who "
            "already got the message; restore it from a backup, or delete it if nothing was "
            "ever sent with it"
        )
    if head != _HEADER:
        raise SendLogError(
            f"{path}: not a send log (not a SQLite database); restore the send log from a "
            "backup, or set send_log in the campaign YAML to another file"
        )


def _check_intact(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged log at once, before any count or send relies on part of it."""
    # quick_check reads every page (about 0.1 s for 100,000 recipients); a query alone
    # could miss a damaged page and report plausible but wrong counts.
    problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        found = _one_line(" ".join(problems).replace("*** in database main ***", ""))
        raise SendLogError(f"{path}: the send log is damaged ({found}); restore it from a backup")


def _one_line(text: str) -> str:
    return " ".join(text.split())  # the CLI prints every error as a single line


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> None:
    """Build the schema in a temporary file beside ``path``, then link it into place.

    The real path only ever holds a complete log: a crash leaves at most a stray
    ``.NAME.*.new`` file. os.link never overwrites, so if another process created the log
    meanwhile, its log wins and ours is dropped.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
    try:
        db = sqlite3.connect(_uri(tmp, "mode=rw"), uri=True, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            upgrade(db, path, new=True)  # messages name the log, not the temporary file
        finally:
            db.close()  # checkpoints the -wal into the file and removes it
        _fsync(tmp)
        with suppress(FileExistsError):  # another process created it first: use that one
            os.link(tmp, path)
        _fsync(path.parent)  # the new name survives a power cut
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def open_for_writing(path: Path) -> sqlite3.Connection:
    """The log at ``path``, created if missing, migrated to the current schema."""
    if not path.exists():
        _create(path)
    _check_header(path)
    # mode=rw: should the file vanish meanwhile, fail instead of creating an empty one.
    # One writer thread at a time (see BatchedLog), so the connection may change threads.
    db = sqlite3.connect(
        _uri(path, "mode=rw"), uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        _check_intact(db, path)
        schema_version(db, path)  # refuse before changing anything in the file
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed `sending` or `sent` survives power loss, not only a crash.
        db.execute("PRAGMA synchronous=FULL")
        upgrade(db, path)
    except BaseException:
        db.close()
        raise
    return db


def open_read_only(path: Path) -> sqlite3.Connection:
    """The log at ``path`` for reading only; it never writes the file or creates one."""
    if not path.exists():
        raise SendLogError(f"{path}: no send log: nothing has been sent for this campaign yet")
    _check_header(path)
    # With no -wal beside it the file holds every commit, but mode=ro alone would create a
    # -wal and -shm (and fail in a folder we cannot write); immutable=1 reads it as it is. A
    # send starting meanwhile writes to its own -wal until its first checkpoint, so the file
    # does not change under this short read in practice. With a -wal, SQLite must read it.
    has_wal = Path(f"{path}-wal").exists()
    db = sqlite3.connect(
        _uri(path, "mode=ro" if has_wal else "mode=ro&immutable=1"),
        uri=True,
        isolation_level=None,
        check_same_thread=False,  # opened here, used on the store's own thread
    )
    try:
        _check_intact(db, path)
        version = schema_version(db, path)
        if version < SCHEMA_VERSION:  # an older log: upgrade a copy in memory, not the file
            memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            db.backup(memory)
            db.close()
            db = memory
            upgrade(db, path)
    except BaseException:
        db.close()
        raise
    return db
