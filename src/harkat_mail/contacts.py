"""Member lists: load, normalise, validate, dedupe, suppress, segment. pandas stays in here."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from email_validator import EmailNotValidError, validate_email

from .errors import ContactListError
from .models import Contact, ContactList, ListConfig, Rejected

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


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 (with or without BOM) first, then Windows-1252; never a silent replacement."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContactListError(
            f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is neither UTF-8 nor Windows-1252"
        ) from None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ContactListError(f"{path}: no such member list") from None
    except OSError as exc:
        raise ContactListError(f"{path}: cannot read the member list ({exc.strerror})") from None
    text = _decode(path, raw)
    if not text.strip():
        raise ContactListError(f"{path}: the member list is empty")
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise ContactListError(f"{path}: cannot parse as CSV: {exc}") from None


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


def _clean_text(series: pd.Series) -> pd.Series:
    """Trim, NFC, and collapse inner runs of whitespace."""
    return series.map(lambda v: " ".join(unicodedata.normalize("NFC", v).split()))


def _clean_name(value: str) -> str:
    # ALL CAPS or all lower exports get title case; mixed case is the member's own spelling.
    if value and (value.isupper() or value.islower()):
        return value.title()
    return value


def normalise_language(value: str, default: str) -> str | None:
    """Map ``EN``, `` English``, ``Français`` ... to a code; None when unrecognised."""
    text = value.strip().lower()
    if not text:
        return default
    return _LANGUAGES.get(text) or (text if len(text) == 2 and text.isalpha() else None)


def check_address(value: str) -> tuple[str | None, str]:
    """Return (cleaned address, "") or (None, reason); syntax only, no DNS."""
    try:
        info = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return None, f"invalid address: {exc}"
    return str(info.normalized), ""


def _options(wanted: object) -> list[str]:
    items = wanted if isinstance(wanted, list) else [wanted]
    return [str(o).strip().casefold() for o in items]


def _condition(values: pd.Series, wanted: object, where: str) -> pd.Series:
    """One column's filter: a value, a list (any of), or one of the operators below.

    ``{in: [...]}``, ``{not: value-or-list}``, ``{between: [low, high]}`` (numbers, inclusive)
    and ``{present: true|false}``. Text compares without case or surrounding spaces.
    """
    text = values.str.strip().str.casefold()
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


def _suppressed(paths: Iterable[Path]) -> tuple[set[str], set[str]]:
    """Addresses and whole domains (lines ``@domain`` or ``domain``) not to send to."""
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


def load_contacts(config: ListConfig, language_column: str, default_language: str) -> ContactList:
    """Load every file of the list and account for every row: kept, or rejected with a reason."""
    kept: list[Contact] = []
    rejected: list[Rejected] = []
    seen: dict[str, str] = {}
    rows_read = 0
    unknown_languages = 0
    sup_addresses, sup_domains = _suppressed(config.suppress)
    for path in config.paths:
        frame = _map_columns(path, _read_table(path), config.columns)
        frame = frame.apply(_clean_text)
        rows_read += len(frame)
        in_segment = _segment_mask(frame, config.segment, config.segment_name)
        label = path.name
        for position, record in enumerate(frame.to_dict("records")):
            row = position + 1
            raw_email = record.get("email", "")
            if not raw_email:
                rejected.append(Rejected(label, row, "", "missing address"))
                continue
            email, reason = check_address(raw_email)
            if email is None:
                rejected.append(Rejected(label, row, raw_email, reason))
                continue
            key = email.lower()
            if key in seen:
                rejected.append(Rejected(label, row, email, f"duplicate of {seen[key]}"))
                continue
            seen[key] = f"{label} row {row}"
            if key in sup_addresses or key.rsplit("@", 1)[1] in sup_domains:
                rejected.append(Rejected(label, row, email, "suppressed"))
                continue
            if not in_segment.iloc[position]:
                rejected.append(
                    Rejected(label, row, email, f"outside segment {config.segment_name}")
                )
                continue
            language = normalise_language(str(record.get(language_column, "")), default_language)
            if language is None:
                unknown_languages += 1
                language = default_language
            fields = {str(k): str(v) for k, v in record.items()}
            first, last = (_clean_name(fields.get(k, "")) for k in ("first_name", "last_name"))
            fields.update(email=email, first_name=first, last_name=last, language=language)
            kept.append(
                Contact(
                    key=key,
                    email=email,
                    row=row,
                    source=label,
                    language=language,
                    first_name=first,
                    last_name=last,
                    member_id=fields.get("member_id", ""),
                    fields=fields,
                )
            )
    warnings: tuple[str, ...] = ()
    if unknown_languages:
        warnings = (
            f"{unknown_languages} rows had an unrecognised language; "
            f"they get the default ({default_language})",
        )
    return ContactList(tuple(kept), tuple(rejected), rows_read, warnings)
