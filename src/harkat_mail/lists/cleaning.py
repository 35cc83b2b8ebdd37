"""Cleaning member lists: validate, dedupe, suppress, consent, segment; one verdict per row."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ContactListError
from ..models import Contact, ContactList, ListConfig, Rejected, SourceInfo, name_rows
from .addresses import split_mailbox, validate_series
from .arrowtext import clean_column, clean_name, to_arrow
from .consent import consent_basis
from .reading import map_columns, read_table
from .segments import segment_mask
from .suppression import read_suppressions

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


def normalise_language(value: str, default: str) -> str | None:
    """Map ``EN``, `` English``, ``Français``, ``fr-CA``, ``en_CA`` ... to a code; None when
    unrecognised."""
    text = value.strip().lower()
    if not text:
        return default
    base = re.split(r"[-_\s(/]", text, maxsplit=1)[0]  # fr-CA, en_CA, French (Canada)
    for candidate in (text, base):
        if candidate in _LANGUAGES:
            return _LANGUAGES[candidate]
    return base if len(base) == 2 and base.isalpha() else None


NAME_COLUMNS = ("first_name", "last_name")
T = TypeVar("T")


@dataclass
class CleanedList:
    """Every row of every file, cleaned, with its verdict: ``_reason`` empty means kept."""

    frame: pd.DataFrame
    sources: tuple[SourceInfo, ...]
    unknown_languages: int
    segment_name: str
    unknown_rows: str = ""  # the first of them, to find them by

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


def _header_of(raw: pd.DataFrame, frame: pd.DataFrame, field: str) -> str:
    """The export's header that became ``field`` (columns keep their order), or ''."""
    return next((str(h) for h, f in zip(raw.columns, frame.columns, strict=True) if f == field), "")


def clean_list(
    config: ListConfig, language_column: str, default_language: str, dns_resolver: Any = None
) -> CleanedList:
    """Load, clean, validate, dedupe, suppress and segment: one verdict per input row."""
    frames, sources = [], []
    for path in config.paths:
        raw, info, rows = read_table(path, config.sheet, config.max_mb)
        frame = map_columns(path, raw, config.columns)
        if config.consent_required and "consent" not in frame.columns:
            dates = _header_of(raw, frame, "consent_date")
            hint = (
                f"; to count a date in {dates!r} as express consent, map it: "
                f"list: columns: {{consent: {dates}}}"
                if dates
                else ""
            )
            raise ContactListError(
                f"{path}: a commercial campaign needs a consent column (CASL; found: "
                f"{', '.join(map(str, raw.columns))}){hint}"
            )
        for column in frame.columns:
            frame[column] = clean_column(frame[column], column in NAME_COLUMNS)
        _split_mailboxes(frame)
        frame["_source"] = path.name
        frame["_row"] = rows
        frame["_in_segment"] = segment_mask(frame, config.segment, config.segment_name)
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
    sup_addresses, sup_domains = read_suppressions(config.suppress, config.max_mb)
    suppressed = valid & key.isin(sup_addresses).to_numpy()
    if sup_domains:
        suppressed |= valid & key.str.rpartition("@")[2].isin(sup_domains).to_numpy()
    outside = ~frame["_in_segment"].to_numpy(dtype=bool)
    basis = np.full(len(frame), "", dtype=object)
    no_consent = np.zeros(len(frame), dtype=bool)
    consent_why = basis
    if config.consent_required:
        today = dt.date.today()
        verdicts = _per_distinct(_consent_text(frame), lambda v: consent_basis(v, today))
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
    named = np.flatnonzero(unknown_rows & (reason == ""))
    first = [(str(sources_col[i]), int(rows_col[i])) for i in named[:5].tolist()]
    language[unknown_rows] = default_language
    frame["_language"] = language
    return CleanedList(
        frame, tuple(sources), len(named), config.segment_name, name_rows(first, len(named))
    )


def _consent_text(frame: pd.DataFrame) -> pd.Series:
    """The consent column, with the date from a separate consent-date column when it has
    none of its own (``express`` + ``2017-03-14`` -> ``express 2017-03-14``)."""
    consent = frame["consent"]
    if "consent_date" not in frame.columns:
        return consent
    dated = consent.str.contains(r"\d", regex=True).fillna(False)
    joined = (consent + " " + frame["consent_date"]).str.strip()
    return consent.where(dated | (frame["consent_date"] == ""), joined)


def _split_mailboxes(frame: pd.DataFrame) -> None:
    """``Élise Côté <elise@example.ca>`` in the address column: the address, and the name
    where the row's name columns are empty."""
    angled = frame["email"].str.contains("<", regex=False).fillna(False).to_numpy(dtype=bool)
    if not angled.any():
        return
    positions = np.flatnonzero(angled)
    parts = [split_mailbox(v) for v in frame["email"].iloc[positions].tolist()]
    text = frame["email"].dtype
    emails = frame["email"].to_numpy(dtype=object)
    emails[positions] = [p[0] for p in parts]
    frame["email"] = pd.Series(emails, index=frame.index, dtype=text)
    for column, index in (("first_name", 1), ("last_name", 2)):
        values = (
            frame[column].to_numpy(dtype=object)
            if column in frame.columns
            else np.full(len(frame), "", dtype=object)
        )
        for position, part in zip(positions.tolist(), parts, strict=True):
            if not values[position] and part[index]:
                values[position] = clean_name(part[index])
        frame[column] = pd.Series(values, index=frame.index, dtype=text)


def _shared(column: pd.Series) -> list[str]:
    """The column's values as text, one object per distinct value."""
    seen: dict[str, str] = {}
    return [seen.setdefault(v, v) for v in map(str, column.tolist())]


def load_contacts(config: ListConfig, language_column: str, default_language: str) -> ContactList:
    """Load every file of the list and account for every row: kept, or rejected with a reason."""
    cleaned = clean_list(config, language_column, default_language)
    frame = cleaned.frame
    rows_read, sources, unknown = len(frame), cleaned.sources, cleaned.unknown_languages
    unknown_rows = cleaned.unknown_rows
    rejected = _rejected(frame[frame["_reason"] != ""])
    data_columns = [c for c in frame.columns if not c.startswith("_")]
    wanted = [*data_columns, "_language", "_consent", "_key", "email", "_source"]
    kept_mask = (frame["_reason"] == "").to_numpy()
    # Column by column, one string object per distinct value (a member list repeats its
    # languages, statuses, locals and names thousands of times), then the frame is let go
    # before the contacts are built: the peak holds one of them, not both.
    columns = {c: _shared(frame[c][kept_mask]) for c in wanted}
    row_numbers = frame["_row"][kept_mask].tolist()
    del cleaned, frame
    pa.default_memory_pool().release_unused()  # Arrow keeps freed buffers otherwise
    fields_in_order = [*data_columns, "language"]
    data = [columns[c] for c in [*data_columns, "_language"]]
    kept: list[Contact] = []
    for i, row in enumerate(row_numbers):
        fields = dict(zip(fields_in_order, [column[i] for column in data], strict=True))
        kept.append(
            Contact(
                key=columns["_key"][i],
                email=columns["email"][i],
                row=row,
                source=columns["_source"][i],
                language=fields["language"],
                first_name=fields.get("first_name", ""),
                last_name=fields.get("last_name", ""),
                member_id=fields.get("member_id", ""),
                fields=fields,
                consent=columns["_consent"][i],
            )
        )
    warnings: tuple[str, ...] = ()
    if unknown:
        warnings = (
            f"{unknown} {'member has' if unknown == 1 else 'members have'} a language that is "
            f"not recognised; they get the default ({default_language}): {unknown_rows}",
        )
    return ContactList(tuple(kept), rejected, rows_read, warnings, sources)


def _rejected(rows: pd.DataFrame) -> tuple[Rejected, ...]:
    """Each rejected row with its file, row number, address, reason, name and member id."""
    blank = pd.Series("", index=rows.index)
    first, last = rows.get("first_name", blank), rows.get("last_name", blank)
    names = (first.astype(str) + " " + last.astype(str)).str.strip()
    return tuple(
        Rejected(source, int(row), email, reason, name, member)
        for source, row, email, reason, name, member in zip(
            rows["_source"],
            rows["_row"],
            rows["email"],
            rows["_reason"],
            names,
            rows.get("member_id", blank),
            strict=True,
        )
    )
