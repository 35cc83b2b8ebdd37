"""Member lists: load, normalise, validate, dedupe, suppress, segment. pandas stays in here."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from .addresses import check_address, validate_series
from .arrowtext import clean_column, to_arrow
from .consent import consent_basis
from .errors import ContactListError
from .models import Contact, ContactList, ListConfig, Rejected, SourceInfo
from .suppression import read_suppressions

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
_LANGUAGES = {
    "en": "en",
    "eng": "en",
    "english": "en",
    "anglais": "en",
    "fr": "fr",
    "fra": "fr",
    "fre": "fr",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
}


def _decode(path: Path, raw: bytes) -> tuple[str, str]:
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


def _read_table(path: Path, sheet: str | None = None) -> tuple[pd.DataFrame, SourceInfo]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ContactListError(f"{path}: no such member list") from None
    except OSError as exc:
        raise ContactListError(f"{path}: cannot read the member list ({exc.strerror})") from None
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_excel(path, sheet)
    text, encoding = _decode(path, raw)
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


def _read_excel(path: Path, sheet: str | None) -> tuple[pd.DataFrame, SourceInfo]:
    """The first sheet, or the named one; every cell as text."""
    try:
        frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=str, keep_default_na=False)
    except (ValueError, KeyError, OSError) as exc:  # a missing sheet, or not a workbook
        raise ContactListError(f"{path}: cannot read the workbook: {exc}") from None
    frame = frame.fillna("").astype(str)
    return frame, SourceInfo(path.name, f"excel sheet {sheet or 1}", "-", len(frame))


def _map_columns(path: Path, frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
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


def normalise_language(value: str, default: str) -> str | None:
    """Map ``EN``, `` English``, ``Français`` ... to a code; None when unrecognised."""
    text = value.strip().lower()
    if not text:
        return default
    return _LANGUAGES.get(text) or (text if len(text) == 2 and text.isalpha() else None)


def _options(wanted: object) -> list[str]:
    items = wanted if isinstance(wanted, list) else [wanted]
    return [str(o).strip().lower() for o in items]


def _condition(values: pd.Series, wanted: object, where: str) -> pd.Series:
    """One column's filter: a value, a list (any of), or one of the operators below.

    ``{in: [...]}``, ``{not: value-or-list}``, ``{between: [low, high]}`` (numbers, inclusive)
    and ``{present: true|false}``. Text compares without case or surrounding spaces.
    """
    text = values.str.strip().str.lower()  # lower, not casefold: arrow does it natively
    if not isinstance(wanted, dict):
        return text.isin(_options(wanted))
    if len(wanted) != 1:
        raise ContactListError(f"{where}: one operator per column, got {sorted(wanted)}")
    ((operator, argument),) = wanted.items()
    if operator == "in":
        return text.isin(_options(argument))
    if operator == "not":
        return ~text.isin(_options(argument))
    if operator == "present":
        return (text != "") if argument else (text == "")
    if operator == "between":
        if not (isinstance(argument, list) and len(argument) == 2):
            raise ContactListError(f"{where}: between takes [low, high]")
        numbers = pd.to_numeric(text, errors="coerce")
        return (numbers >= float(argument[0])) & (numbers <= float(argument[1]))
    raise ContactListError(f"{where}: unknown operator {operator!r} (in, not, between, present)")


def _segment_mask(frame: pd.DataFrame, filters: Mapping[str, object], label: str) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, wanted in filters.items():
        if column not in frame.columns:
            raise ContactListError(
                f"segment {label!r}: the list has no column {column!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
        mask &= _condition(frame[column], wanted, f"segment {label!r}, column {column!r}")
    return mask.fillna(False).astype(bool)


__all__ = ["check_address", "clean_list", "load_contacts", "normalise_language"]


NAME_COLUMNS = ("first_name", "last_name")
T = TypeVar("T")


@dataclass
class CleanedList:
    """Every row of every file, cleaned, with its verdict: ``_reason`` empty means kept."""

    frame: pd.DataFrame
    sources: tuple[SourceInfo, ...]
    unknown_languages: int
    segment_name: str

    def counts(self) -> dict[str, int]:
        """Rows read, kept and rejected, and rejections per reason."""
        why = self.frame["_why"]
        kept = int((why == "").sum())
        out = {"read": len(self.frame), "kept": kept, "rejected": len(self.frame) - kept}
        for reason, count in why[why != ""].value_counts().items():
            out[str(reason)] = int(count)
        return out


def _first_of(identity: pd.Series, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among the candidate rows, which repeat an earlier row's identity, and that row.

    Returns the positions of the repeats and, for each, the position of the first row.
    """
    positions = np.flatnonzero(candidates)
    codes = pc.dictionary_encode(to_arrow(identity.iloc[positions])).indices.to_numpy()
    # Arrow numbers distinct values in order of first appearance, so a row is first exactly
    # when its code exceeds every code before it.
    before = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    first = codes > before
    repeats = ~first
    return positions[repeats], positions[np.flatnonzero(first)][codes[repeats]]


def _per_distinct(values: pd.Series, rule: Callable[[str], T]) -> np.ndarray:
    """``rule`` applied once per distinct value (a missing cell reads as ""), per row."""
    codes = values.astype("category")
    table = [rule(str(c)) for c in codes.cat.categories]
    lookup = np.empty(len(table) + 1, dtype=object)
    lookup[:] = [*table, rule("")]  # code -1: a missing cell
    return lookup[codes.cat.codes.to_numpy()]


def clean_list(
    config: ListConfig, language_column: str, default_language: str, dns_resolver: Any = None
) -> CleanedList:
    """Load, clean, validate, dedupe, suppress and segment: one verdict per input row."""
    frames, sources = [], []
    for path in config.paths:
        raw, info = _read_table(path, config.sheet)
        frame = _map_columns(path, raw, config.columns)
        if config.consent_required and "consent" not in frame.columns:
            raise ContactListError(
                f"{path}: a commercial campaign needs a consent column (CASL; found: "
                f"{', '.join(map(str, raw.columns))})"
            )
        for column in frame.columns:
            frame[column] = clean_column(frame[column], column in NAME_COLUMNS)
        frame["_source"] = path.name
        frame["_row"] = np.arange(1, len(frame) + 1)
        frame["_in_segment"] = _segment_mask(frame, config.segment, config.segment_name)
        frames.append(frame)
        sources.append(info)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True).fillna("")
    email, invalid = validate_series(frame["email"], config.deliverability, dns_resolver)
    missing = (frame["email"] == "").to_numpy()
    valid = email.notna().to_numpy() & ~missing
    frame["email"] = email.where(valid, frame["email"])
    key = frame["email"].str.lower().where(valid, "")
    frame["_key"] = key
    # The first row with an address wins; later ones name it. By member id, the first row of
    # a member wins, and an address two members share is still sent to once (the log's key).
    duplicate = np.zeros(len(frame), dtype=bool)
    duplicate_of = np.full(len(frame), "", dtype=object)
    identities = [key]
    if config.dedupe_by == "member_id" and "member_id" in frame.columns:
        member = frame["member_id"].str.lower()
        identities.insert(0, ("m:" + member).where(member != "", key))
    sources_col, rows_col = frame["_source"].to_numpy(), frame["_row"].to_numpy()
    for identity in identities:
        repeats, firsts = _first_of(identity, valid & ~duplicate)
        duplicate[repeats] = True
        duplicate_of[repeats] = [
            f"duplicate of {sources_col[i]} row {rows_col[i]}" for i in firsts.tolist()
        ]
    sup_addresses, sup_domains = read_suppressions(config.suppress)
    suppressed = valid & key.isin(sup_addresses).to_numpy()
    if sup_domains:
        suppressed |= valid & key.str.rpartition("@")[2].isin(sup_domains).to_numpy()
    outside = ~frame["_in_segment"].to_numpy(dtype=bool)
    basis = np.full(len(frame), "", dtype=object)
    no_consent = np.zeros(len(frame), dtype=bool)
    consent_why = basis
    if config.consent_required:
        today = dt.date.today()
        verdicts = _per_distinct(frame["consent"], lambda v: consent_basis(v, today))
        basis = np.array([b or "" for b, _ in verdicts], dtype=object)
        consent_why = np.array([w for _, w in verdicts], dtype=object)
        no_consent = basis == ""
    why = np.full(len(frame), "", dtype=object)
    reason = np.full(len(frame), "", dtype=object)
    # Later masks win: a row outside the segment with a bad address is "invalid address".
    for mask, label, text in (
        (outside, "outside segment", f"outside segment {config.segment_name}"),
        (no_consent, "no consent", consent_why),
        (suppressed, "suppressed", "suppressed"),
        (duplicate, "duplicate", duplicate_of),
        (~valid, "invalid address", invalid.to_numpy()),
        (missing, "missing address", "missing address"),
    ):
        why[mask] = label
        reason[mask] = text if isinstance(text, str) else text[mask]
    frame["_reason"] = reason
    frame["_consent"] = basis
    frame["_why"] = why
    languages = frame.get(language_column, pd.Series("", index=frame.index)).astype(str)
    language = _per_distinct(languages, lambda v: normalise_language(v, default_language))
    unknown_rows = pd.isna(language)
    unknown = int((unknown_rows & (reason == "")).sum())
    language[unknown_rows] = default_language
    frame["_language"] = language
    return CleanedList(frame, tuple(sources), unknown, config.segment_name)


def load_contacts(config: ListConfig, language_column: str, default_language: str) -> ContactList:
    """Load every file of the list and account for every row: kept, or rejected with a reason."""
    cleaned = clean_list(config, language_column, default_language)
    frame = cleaned.frame
    data_columns = [c for c in frame.columns if not c.startswith("_")]
    kept: list[Contact] = []
    for record in frame[frame["_reason"] == ""].to_dict("records"):
        fields = {c: str(record[c]) for c in data_columns}
        fields["language"] = record["_language"]
        kept.append(
            Contact(
                key=record["_key"],
                email=record["email"],
                row=int(record["_row"]),
                source=record["_source"],
                language=record["_language"],
                first_name=fields.get("first_name", ""),
                last_name=fields.get("last_name", ""),
                member_id=fields.get("member_id", ""),
                fields=fields,
                consent=record["_consent"],
            )
        )
    rejected_rows = frame[frame["_reason"] != ""]
    rejected = tuple(
        Rejected(source, int(row), email, reason)
        for source, row, email, reason in zip(
            rejected_rows["_source"],
            rejected_rows["_row"],
            rejected_rows["email"],
            rejected_rows["_reason"],
            strict=True,
        )
    )
    warnings: tuple[str, ...] = ()
    if cleaned.unknown_languages:
        warnings = (
            f"{cleaned.unknown_languages} rows had an unrecognised language; "
            f"they get the default ({default_language})",
        )
    return ContactList(tuple(kept), rejected, len(frame), warnings, cleaned.sources)
