"""Segments: which rows of a cleaned list a campaign is for."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..errors import ContactListError


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


def segment_mask(frame: pd.DataFrame, filters: Mapping[str, object], label: str) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, wanted in filters.items():
        if column not in frame.columns:
            raise ContactListError(
                f"segment {label!r}: the list has no column {column!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
        mask &= _condition(frame[column], wanted, f"segment {label!r}, column {column!r}")
    return mask.fillna(False).astype(bool)
