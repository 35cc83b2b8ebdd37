"""What reading a member or suppression file may cost, checked before any parsing starts.

A list comes from whoever exported it, or from someone who knows where a campaign reads it.
Unchecked, ``/dev/zero`` or a FIFO reads forever, a 2 GB file exhausts memory, and a 3 MB
workbook inflates to gigabytes of XML. Here: only regular files, at most ``max_mb`` MiB
(``list: {max_mb: N}`` in the campaign YAML), and a workbook whose parts, unpacked, stay
within the same limit and compress no better than real spreadsheets do.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import zipfile
from pathlib import Path

from ..errors import ContactListError
from ..models import ListConfig

MIB = 1024 * 1024
DEFAULT_MAX_MB = ListConfig.max_mb  # one default, kept on the config the YAML fills
# Sheet XML that Excel or LibreOffice writes deflates about 5-20:1; deflate's ceiling is
# about 1030:1, which is what bombs use. Parts under RATIO_FLOOR are too small to matter.
MAX_RATIO = 100
RATIO_FLOOR = MIB
MAX_PARTS = 10_000  # a workbook has dozens of parts; each costs a ZipInfo in memory
MAX_DIRECTORY = 16 * MIB  # zipfile holds the whole central directory in memory
_EOCD = b"PK\x05\x06"  # end of central directory record: 22 bytes + a comment of < 64 KiB
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def _raise_hint(size: int) -> str:
    return f"raise it in the campaign YAML with list: {{max_mb: {math.ceil(size / MIB)}}} or more"


def _check_size(path: Path, size: int, max_mb: int, what: str) -> None:
    if size > max_mb * MIB:
        raise ContactListError(
            f"{path}: the {what} is {size / MIB:.1f} MiB, over the limit of {max_mb} MiB; "
            + _raise_hint(size)
        )


def read_bounded(path: Path, max_mb: int, what: str = "member list") -> bytes:
    """The bytes of a regular file of at most ``max_mb`` MiB; anything else is refused."""
    try:
        info = os.stat(path)  # stat, not open: opening a FIFO blocks until a writer comes
    except FileNotFoundError:
        raise ContactListError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise ContactListError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
        raise ContactListError(f"{path}: the {what} is {kind}, not a regular file")
    _check_size(path, info.st_size, max_mb, what)
    try:
        # The path may have been swapped since the stat: don't block on open, check again,
        # and read one byte past the limit so a file that grew is refused, not read whole.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ContactListError(f"{path}: the {what} is no longer a regular file")
            raw = handle.read(max_mb * MIB + 1)
    except OSError as exc:
        raise ContactListError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    _check_size(path, len(raw), max_mb, what)
    return raw


def _directory_size(raw: bytes) -> int | None:
    """The central directory's size from the end record; None when there is no zip here."""
    at = raw.rfind(_EOCD, max(0, len(raw) - 22 - 0xFFFF))
    if at < 0 or len(raw) - at < 22:
        return None
    return int(struct.unpack_from("<I", raw, at + 12)[0])  # 0xFFFFFFFF: zip64, refused too


def check_workbook(path: Path, raw: bytes, max_mb: int) -> None:
    """Refuse an .xlsx that is not a zip, or would unpack past the limits, before parsing.

    The sizes checked are the ones the central directory declares; Python's zipfile (which
    openpyxl reads through) stops each part at its declared size, so a part cannot inflate
    past what was checked here.
    """
    directory = _directory_size(raw)
    if directory is None:
        raise ContactListError(
            f"{path}: not an .xlsx workbook (no zip archive inside); an old .xls or a "
            "password-protected workbook must be saved again as .xlsx or CSV"
        )
    if directory > MAX_DIRECTORY:
        raise ContactListError(
            f"{path}: the workbook's zip directory is over {MAX_DIRECTORY // MIB} MiB, "
            "far more than a spreadsheet's; refused"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise ContactListError(f"{path}: not a readable .xlsx workbook ({exc})") from None
    if len(parts) > MAX_PARTS:
        raise ContactListError(
            f"{path}: the workbook has {len(parts)} parts, more than {MAX_PARTS}; refused"
        )
    unpacked = sum(part.file_size for part in parts)
    if unpacked > max_mb * MIB:
        raise ContactListError(
            f"{path}: the workbook unpacks to {unpacked / MIB:.1f} MiB, over the limit of "
            f"{max_mb} MiB (a zip bomb, or a very large sheet); {_raise_hint(unpacked)}"
        )
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise ContactListError(
                f"{path}: the workbook part {part.filename} inflates {ratio:.0f}:1 "
                f"({part.file_size / MIB:.1f} MiB), far more than a real spreadsheet "
                f"(at most {MAX_RATIO}:1); refused as a likely zip bomb. If the workbook is "
                "genuine, save the sheet as CSV and list that"
            )
