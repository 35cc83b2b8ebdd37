"""Reading member files: bytes -> decoded text -> a DataFrame with canonical column names."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ContactListError
from ..models import SourceInfo
from .limits import DEFAULT_MAX_MB, check_workbook, read_bounded

# Headers recognised without a mapping, compared by header_key (case, accents, spaces and
# punctuation ignored): the names Outlook, Gmail / Google Contacts and union databases export.
ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email", "e-mail", "email address", "e-mail address", "e-mail 1 - value",
        "email 1 value", "primary email", "courriel", "adresse courriel",
        "adresse électronique", "adresse de courriel", "email_address",
    ),
    "first_name": (
        "first_name", "first name", "firstname", "given name", "prénom", "forename",
    ),
    "last_name": (
        "last_name", "last name", "lastname", "family name", "surname", "nom",
        "nom de famille",
    ),
    "member_id": (
        "member_id", "member id", "member #", "member no", "member number", "membership number",
        "membership #", "no de membre", "numéro de membre", "no membre", "# de membre",
    ),
    "language": (
        "language", "langue", "preferred language", "langue préférée",
        "langue de correspondance", "correspondence language",
    ),
    "local": ("local", "section locale", "local number", "local #", "no de section locale"),
    "province": ("province", "prov"),
    "status": ("status", "statut"),
    "consent": ("consent", "consentement", "casl consent", "casl"),
    "consent_date": (
        "consent date", "date of consent", "consent given", "date consent given",
        "date de consentement", "date du consentement",
    ),
}  # fmt: skip
# Generic headers taken only when no specific one is present ("ID" may be a database key).
WEAK_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("mail",),
    "member_id": ("id",),
    "language": ("lang",),
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
) -> tuple[pd.DataFrame, SourceInfo, np.ndarray]:
    """A CSV or workbook as text cells, and each row's number as the spreadsheet shows it.

    The header is row 1, so the first member is row 2; blank lines count, as in the
    spreadsheet, but hold no member. Only a regular file of at most ``max_mb`` MiB.
    """
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
    info = SourceInfo(path.name, encoding, names.get(delimiter, delimiter), len(frame))
    return frame, info, _csv_rows(text, delimiter, len(frame))


def _csv_rows(text: str, delimiter: str, count: int) -> np.ndarray:
    """Each record's row: 2, 3 ... unless blank lines (which pandas skips) sit in between."""
    plain = np.arange(2, count + 2)
    body = text.strip()
    if body.count("\n") + 1 == count + 1:
        # one line per row, blank lines at most before or after: settled by counting lines
        return plain + text[: len(text) - len(text.lstrip())].count("\n")
    rows = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for number, record in enumerate(reader, start=1):
            # pandas skips a line that is empty or only spaces, and so does the count here
            if record and (len(record) > 1 or record[0].strip()):
                rows.append(number)
    except csv.Error:
        return plain
    # rows[0] is the header; a quoted cell with line breaks is still one row, as in Excel
    return np.array(rows[1:]) if len(rows) == count + 1 else plain


def _read_excel(
    path: Path, raw: bytes, sheet: str | None
) -> tuple[pd.DataFrame, SourceInfo, np.ndarray]:
    """The first sheet, or the named one; every cell as text; empty rows dropped, numbered."""
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
    rows = np.arange(2, len(frame) + 2)
    filled = (frame.apply(lambda column: column.str.strip()) != "").any(axis=1).to_numpy()
    if not filled.all():
        frame, rows = frame[filled].reset_index(drop=True), rows[filled]
    return frame, SourceInfo(path.name, f"excel sheet {sheet or 1}", "-", len(frame)), rows


def header_key(header: str) -> str:
    """A header as compared with the aliases: ``E-mail Address`` and ``email_address`` match."""
    text = unicodedata.normalize("NFKD", str(header).replace("#", " number "))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"\bno\b\.?", "number", text)  # "No de membre", "Member No."
    return re.sub(r"[^a-z0-9]+", "", text)


_KEYS = {field: {header_key(a) for a in names} for field, names in ALIASES.items()}
_WEAK_KEYS = {field: {header_key(a) for a in names} for field, names in WEAK_ALIASES.items()}


def map_columns(path: Path, frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Rename export headers to canonical field names; the email column is required.

    ``list.columns`` wins; then the known aliases. Two headers that both look like the same
    field are refused, naming both, rather than one chosen silently.
    """
    headers = [str(h) for h in frame.columns]
    found = {h.strip().lower(): h for h in headers}
    rename: dict[str, str] = {}
    for canonical, header in columns.items():
        if header.strip().lower() not in found:
            raise ContactListError(
                f"{path}: list.columns maps {canonical} to {header!r}, which is not a header "
                f"(found: {', '.join(headers)})"
            )
        rename[found[header.strip().lower()]] = canonical
    keys = {h: header_key(h) for h in headers if h not in rename}
    for table in (_KEYS, _WEAK_KEYS):
        for canonical, aliases in table.items():
            if canonical in rename.values():
                continue
            matches = [h for h, key in keys.items() if key in aliases and h not in rename]
            if len(matches) > 1:
                raise ContactListError(
                    f"{path}: the columns {matches[0]!r} and {matches[1]!r} both look like "
                    f"{canonical}; say which in the campaign, e.g. list: {{columns: "
                    f"{{{canonical}: {matches[0]!r}}}}}"
                )
            if matches:
                rename[matches[0]] = canonical
    if "email" not in rename.values():
        raise ContactListError(
            f"{path}: no email column (found: {', '.join(headers)}); "
            "name it in list.columns, e.g. columns: {email: 'Work Email'}"
        )
    out = frame.rename(columns=rename)
    # Unrecognised headers stay available to templates under a lower-case, underscored name;
    # one that would repeat a field's name (Email beside a mapped E-mail Address) gets _2.
    taken = set(rename.values())
    names = []
    for column in out.columns:
        name = str(column)
        if name not in rename.values():
            base = name = name.strip().lower().replace(" ", "_")
            suffix = 2
            while name in taken:
                name, suffix = f"{base}_{suffix}", suffix + 1
            taken.add(name)
        names.append(name)
    out.columns = names
    return out
