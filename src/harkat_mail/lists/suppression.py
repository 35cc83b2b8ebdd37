"""Suppression files: addresses and domains no campaign sends to.

One entry per line: an address, or a whole domain (``@example.net`` or ``example.net``);
anything after a comma is a note (why, when, which list). ``#`` starts a comment. The
project-wide ``suppression.txt`` is one of these; the unsubscribe server appends to it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import ContactListError

HEADER = (
    "# harkat-mail project-wide suppression list: every campaign skips these.\n"
    "# One address or @domain per line; after a comma: why, when, which list.\n"
)


def read_suppressions(paths: Iterable[Path]) -> tuple[set[str], set[str]]:
    """Addresses (lower-cased) and whole domains not to send to."""
    addresses: set[str] = set()
    domains: set[str] = set()
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except OSError as exc:
            raise ContactListError(f"{path}: cannot read the suppression file ({exc})") from None
        for line in lines:
            entry = line.split(",")[0].strip().strip('"').lower()
            if not entry or entry.startswith("#") or entry == "email":
                continue
            if "@" in entry.lstrip("@"):
                addresses.add(entry)
            else:
                domains.add(entry.lstrip("@"))
    return addresses, domains


def add_suppression(path: Path, address: str, why: str, list_id: str) -> bool:
    """Append ``address`` unless already there; durable before returning. True if added.

    An exclusive lock serialises writers (several server workers, a person editing by
    script); the line is fsynced so an acknowledged unsubscribe survives a power cut.
    """
    address = address.strip().lower()
    if not address or any(c in address for c in ",\r\n\0"):
        raise ValueError("not an address that can be suppressed")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        known = {line.split(",")[0].strip().lower() for line in text.splitlines()}
        if address in known:
            return False
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        prefix = HEADER if not text else ("" if text.endswith("\n") else "\n")
        handle.write(f"{prefix}{address},{why} {stamp},{list_id.replace(',', ' ')}\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True
