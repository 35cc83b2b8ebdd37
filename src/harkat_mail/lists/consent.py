"""CASL consent: may a commercial message go to this member, and on what basis.

The ``consent`` column holds one of (case and spacing ignored, French words accepted):

- ``express 2017-03-14``: express consent given that day; it lasts until withdrawn.
- ``implied``: a current member; consent is implied by the membership.
- ``implied 2025-06-30``: membership ended that day; implied consent lasts two years after.
- ``withdrawn`` (or ``none``, ``no``): no consent.
- a date alone (``2017-03-14``, or an Excel date cell): express consent given that day.

Dates are ISO (``2017-03-14`` or ``2017/03/14``); a time after them, as an Excel date cell
carries, is ignored.

Anything else, an empty cell, or an expired or future-dated basis excludes the member with
the reason; the basis a member was sent under is recorded in the send log.
"""

from __future__ import annotations

import datetime as dt
import re

IMPLIED_YEARS = 2
_DATE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}$")
_TIME = re.compile(r"(\d{4}[-/]\d{1,2}[-/]\d{1,2})[ t]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_EXPRESS = {"express", "exprès", "expres", "expresse", "explicit", "explicite"}
_IMPLIED = {"implied", "implicit", "implicite", "tacite", "member", "membre"}
_WITHDRAWN = {"withdrawn", "retiré", "retire", "none", "no", "non", "aucun", "unsubscribed"}


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February -> 28 February
        return day.replace(year=day.year + years, day=28)


def consent_basis(value: str, today: dt.date) -> tuple[str | None, str]:
    """(the basis to record, "") or (None, why the member may not get a commercial message)."""
    text = _TIME.sub(r"\1", value.strip().lower())
    text = " ".join(text.replace(":", " ").replace(",", " ").split())
    if not text:
        return None, "no consent: none recorded"
    kind, _, rest = text.partition(" ")
    if _DATE.match(kind) and not rest:  # a date alone: the day consent was given
        kind, rest = "express", kind
    when: dt.date | None = None
    if rest:
        try:
            when = dt.date.fromisoformat(rest.replace("/", "-"))
        except ValueError:
            return (
                None,
                f"no consent: cannot read {value.strip()!r} (expected e.g. express 2017-03-14)",
            )
    if kind in _EXPRESS:
        if when is None:
            return None, "no consent: express consent needs the date it was given"
        if when > today:
            return None, f"no consent: express consent dated in the future ({when})"
        return f"express {when}", ""
    if kind in _IMPLIED:
        if when is None:
            return "implied: current member", ""
        until = _add_years(when, IMPLIED_YEARS)
        if today > until:
            return None, f"no consent: implied consent expired {until} (membership ended {when})"
        return f"implied: membership ended {when}, valid until {until}", ""
    if kind in _WITHDRAWN and when is None:
        return None, "no consent: withdrawn"
    return None, _unreadable(value)


def _unreadable(value: str) -> str:
    return f"no consent: cannot read {value.strip()!r} (expected e.g. express 2017-03-14)"
