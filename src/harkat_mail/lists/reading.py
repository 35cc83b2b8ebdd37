"""Reading member files: bytes -> decoded text -> a DataFrame with canonical column names."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..errors import ContactListError
from ..models import SourceInfo
from .limits import DEFAULT_MAX_MB, check_workbook, read_bounded

# Headers recognised without a mapping (compared lower-cased and trimmed).
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "courriel", "adresse courriel", "mail"),
    "first_name": ("first_name", "first name", "firstname", "prénom", "prenom", "given name"),
    "last_name": ("last_name", "last name", "lastname", "nom", "nom de famille", "surname"),
    "member_id": ("member_id", "member id", "member number", "numéro de membre", "id"),
    "language": ("language", "langue", "lang", "preferred language"),
    "local": ("local", "section locale", "local number"),
    "province": ("province", "prov"),
    "status": ("status", "statut"),
    "consent": ("consent", "consentement", "casl consent", "casl"),
}


def decode_bytes(path: Path, raw: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM) first, then Windows-1252; never a silent replacement."""
    try:
        encoding = "utf-8 with BOM" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        return raw.decode("utf-8-sig"), encoding
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContactListError(
            f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is neither UTF-8 nor Windows-1252"
        ) from None


def read_table(
    path: Path, sheet: str | None = None, max_mb: int = DEFAULT_MAX_MB
) -> tuple[pd.DataFrame, SourceInfo]:
    """A CSV or workbook as text cells; only a regular file of at most ``max_mb`` MiB."""
    raw = read_bounded(path, max_mb)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        check_workbook(path, raw, max_mb)
        return _read_excel(path, raw, sheet)  # the bytes checked, not the path again
    text, encoding = decode_bytes(path, raw)
    if not text.strip():
        raise ContactListError(f"{path}: the member list is empty")
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    frame = None
    if len(text) > 1_000_000:  # large exports: pyarrow's parser, several times faster
        try:
            utf8 = raw[3:] if encoding == "utf-8 with BOM" else raw
            data = io.BytesIO(utf8 if encoding.startswith("utf-8") else text.encode("utf-8"))
            frame = pd.read_csv(
                data, sep=delimiter, dtype=str, keep_default_na=False, engine="pyarrow"
            )
        except (pd.errors.ParserError, ValueError, ImportError, OSError):
            frame = None  # e.g. line breaks inside quoted fields: the C parser handles them
    if frame is None:
        try:
            frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, ValueError) as exc:
            raise ContactListError(f"{path}: cannot parse as CSV: {exc}") from None
    names = {",": "comma", ";": "semicolon", "\t": "tab"}
    return frame, SourceInfo(path.name, encoding, names.get(delimiter, delimiter), len(frame))


def _read_excel(path: Path, raw: bytes, sheet: str | None) -> tuple[pd.DataFrame, SourceInfo]:
    """The first sheet, or the named one; every cell as text."""
    try:
        frame = pd.read_excel(
            io.BytesIO(raw), sheet_name=sheet or 0, dtype=str, keep_default_na=False
        )
    except (ValueError, KeyError) as exc:  # a missing sheet: the message names the sheets
        raise ContactListError(f"{path}: cannot read the workbook: {exc}") from None
    except Exception as exc:
        # A damaged workbook fails inside openpyxl in many ways (BadZipFile, a bad CRC, an
        # XML ParseError when expat stops an entity bomb, TypeError ...): one line for all.
        raise ContactListError(
            f"{path}: cannot read the workbook ({type(exc).__name__}: {exc})"
        ) from None
    frame = frame.fillna("").astype(str)
    return frame, SourceInfo(path.name, f"excel sheet {sheet or 1}", "-", len(frame))


def map_columns(path: Path, frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Rename export headers to canonical field names; the email column is required."""
    found = {str(h).strip().lower(): str(h) for h in frame.columns}
    rename: dict[str, str] = {}
    for canonical, header in columns.items():
        if header.strip().lower() not in found:
            raise ContactListError(
                f"{path}: list.columns maps {canonical} to {header!r}, which is not a header "
                f"(found: {', '.join(map(str, frame.columns))})"
            )
        rename[found[header.strip().lower()]] = canonical
    for canonical, aliases in ALIASES.items():
        if canonical in rename.values():
            continue
        for alias in aliases:
            if alias in found and found[alias] not in rename:
                rename[found[alias]] = canonical
                break
    if "email" not in rename.values():
        raise ContactListError(
            f"{path}: no email column (found: {', '.join(map(str, frame.columns))}); "
            "name it in list.columns"
        )
    out = frame.rename(columns=rename)
    # Unrecognised headers stay available to templates under a lower-case, underscored name.
    out.columns = [
        c if c in rename.values() else str(c).strip().lower().replace(" ", "_") for c in out.columns
    ]
    return out
