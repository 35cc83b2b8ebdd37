"""Suppression files: addresses and domains no campaign sends to.

One entry a line (UTF-8, or Windows-1252 from an old spreadsheet):

* an address, ``name@example.org``, optionally followed by ``,`` and notes; the unsubscribe
  server writes ``address,why when,list-id``;
* a whole domain, ``@example.net`` or ``example.net``;
* a comment: a line starting with ``#`` that is not an address (it has whitespace, or
  no ``@``), e.g. ``# bounced in March``;
* blank lines, and a spreadsheet header ``email``, are ignored.

This is unambiguous for every address a campaign sends to. email-validator, as harkat-mail
calls it (no quoted local part, no IP-literal domain), accepts no whitespace, comma or quote
in an address, so an address line reads back as that address even when it starts with ``#``
(``#news@example.org`` is valid), and ``# ...`` with a space is always a comment. A
commented-out ``#old@example.org`` reads as an address: when in doubt, suppress.

Entries compare as cleaning compares list rows: email-validator's normalised form,
lower-cased (``A@XN--BCHER-KVA.example`` is ``a@bücher.example``). The project-wide
``suppression.txt`` is one of these files; the unsubscribe server appends to it.
"""

from __future__ import annotations

import errno
import importlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType

import pandas as pd

from ..errors import ContactListError
from .addresses import check_address, validate_series
from .limits import DEFAULT_MAX_MB, read_bounded
from .reading import decode_bytes

HEADER = (
    "# harkat-mail project-wide suppression list: every campaign skips these.\n"
    "# One address or @domain per line; after a comma: why, when, which list.\n"
    "# A comment is a line starting with '#' and a space; #name@example.org is an address.\n"
)
_WINDOWS_LOCK_AT = 2**31 - 2  # msvcrt locks a byte range; far past any data (see _msvcrt_lock)
_WINDOWS_LOCK_TRIES = 6  # each LK_LOCK call waits about 10 s


def _entry(line: str) -> str | None:
    """The address or domain a line names, lower-cased as written; None for no entry."""
    entry = line.split(",", 1)[0].strip().strip('"').lower()
    if not entry or entry == "email":
        return None
    if entry.startswith("#") and ("@" not in entry[1:] or any(c.isspace() for c in entry)):
        return None  # a comment: no address has whitespace, and every address has an "@"
    return entry


def _normalised(entries: list[str]) -> set[str]:
    """Each address as cleaning keys a list row; one email-validator refuses stays as is."""
    if not entries:
        return set()
    written = pd.Series(entries, dtype="str")
    cleaned, _ = validate_series(written)
    return set(cleaned.str.lower().fillna(written).tolist())


def _domain(domain: str) -> str:
    """A domain as it appears in a list row's key: IDNA decoded, lower-cased."""
    cleaned, _ = check_address(f"postmaster@{domain}")
    return cleaned.rpartition("@")[2].lower() if cleaned else domain


def read_suppressions(
    paths: Iterable[Path], max_mb: int = DEFAULT_MAX_MB
) -> tuple[set[str], set[str]]:
    """Addresses (normalised, lower-cased) and whole domains not to send to."""
    addresses: list[str] = []
    domains: set[str] = set()
    for path in paths:
        text, _ = decode_bytes(path, read_bounded(path, max_mb, "suppression file"))
        for line in text.splitlines():
            entry = _entry(line)
            if entry is None:
                continue
            if "@" in entry.lstrip("@"):
                addresses.append(entry)
            else:
                domains.add(entry.lstrip("@"))
    return _normalised(addresses), {_domain(d) for d in domains}


def _platform_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@contextmanager
def _flock(fcntl: ModuleType, fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _msvcrt_lock(msvcrt: ModuleType, path: Path, fd: int) -> Iterator[None]:
    # Windows byte-range locks are mandatory: locking data would make readers (a campaign,
    # the server's "already unsubscribed?" check) fail, so lock one byte past any data.
    os.lseek(fd, _WINDOWS_LOCK_AT, os.SEEK_SET)
    for attempt in range(_WINDOWS_LOCK_TRIES):
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            break
        except OSError as exc:
            if exc.errno != errno.EDEADLOCK or attempt == _WINDOWS_LOCK_TRIES - 1:
                raise ContactListError(
                    f"{path}: cannot lock the suppression file ({exc.strerror})"
                ) from None
    try:
        yield
    finally:
        os.lseek(fd, _WINDOWS_LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _exclusive(path: Path) -> Callable[[int], AbstractContextManager[None]]:
    """How to lock the file here: flock on POSIX, msvcrt.locking on Windows."""
    fcntl = _platform_module("fcntl")
    if fcntl is not None:
        return partial(_flock, fcntl)
    msvcrt = _platform_module("msvcrt")
    if msvcrt is not None:
        return partial(_msvcrt_lock, msvcrt, path)
    raise ContactListError(
        f"{path}: cannot lock the suppression file: this Python has neither fcntl nor msvcrt"
    )


def _note(text: str) -> str:
    """Free text for after the address: no comma, no line break."""
    return " ".join(text.replace(",", " ").split())


def _writable(address: str) -> str:
    """``address`` as cleaning keys it, so the next campaign matches it; ValueError if it
    could not read back as itself (see the module docstring)."""
    cleaned, _ = check_address(address.strip())
    entry = (cleaned or address.strip()).lower()
    if "@" not in entry[1:] or any(c.isspace() or c in ',"\0' for c in entry):
        raise ValueError(f"not an address that can be suppressed: {address!r}")
    return entry


def add_suppression(path: Path, address: str, why: str, list_id: str) -> bool:
    """Append ``address`` unless already there; durable before returning. True if added."""
    _writable(address)  # an address that cannot be written is an error here
    return bool(add_suppressions(path, [(address, why)], list_id))


def add_suppressions(path: Path, entries: Iterable[tuple[str, str]], list_id: str) -> set[str]:
    """Append each ``(address, why)`` not there yet, in one locked write; the entries added.

    An exclusive lock serialises writers (several server workers, ``bounces process``, a
    person editing by script); the lines are fsynced so an acknowledged unsubscribe survives
    a power cut. An address no line can hold is left out (the send log's table has it).
    """
    wanted: dict[str, str] = {}
    for address, why in entries:
        try:
            wanted.setdefault(_writable(address), why)
        except ValueError:
            continue
    if not wanted:
        return set()
    lock = _exclusive(path)  # before creating the file: no lock, no write
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o644)
    # surrogateescape: a hand-edited Windows-1252 line must not stop an unsubscribe.
    with os.fdopen(fd, "r+", encoding="utf-8", errors="surrogateescape") as handle, lock(fd):
        handle.seek(0)
        text = handle.read()
        there = {_entry(line) for line in text.splitlines()}
        new = {entry: why for entry, why in wanted.items() if entry not in there}
        if not new:
            return set()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        prefix = HEADER if not text else ("" if text.endswith("\n") else "\n")
        lines = "".join(f"{e},{_note(why)} {stamp},{_note(list_id)}\n" for e, why in new.items())
        handle.write(prefix + lines)
        handle.flush()
        os.fsync(handle.fileno())
    return set(new)
