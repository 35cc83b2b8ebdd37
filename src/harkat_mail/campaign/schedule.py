"""``window:``: when a campaign's messages may start, in its own local time (``timezone:``)."""

from __future__ import annotations

import re

from ..models import SendWindow
from .yamldoc import Reader

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
WINDOW_EXAMPLE = 'e.g. window: {days: mon-fri, hours: "07:00-20:00"}'


def _days(r: Reader, value: object) -> tuple[frozenset[int], str]:
    at = ("window", "days")
    text = r.text(value, at).strip().lower()
    days: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        try:
            start = DAYS.index(first.strip()[:3]) if len(first.strip()) >= 3 else -1
            end = DAYS.index(last.strip()[:3]) if dash and len(last.strip()) >= 3 else start
        except ValueError:
            start = end = -1
        if start < 0 or end < 0 or (dash and end < start):
            raise r.doc.error(
                at,
                f"cannot read {part!r}: the weekdays messages may go out, as day names or "
                f"ranges ({', '.join(DAYS)}), e.g. days: mon-fri or days: mon,wed,fri",
            )
        days.update(range(start, end + 1))
    return frozenset(days), text


def _hours(r: Reader, value: object) -> tuple[int, int, str]:
    at = ("window", "hours")
    text = r.text(value, at)
    match = _HOURS.match(text)
    if match:
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60 and start < end <= 1440:
            return start, end, f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"
    raise r.doc.error(
        at,
        f"cannot read {text!r}: the local hours messages may start, HH:MM-HH:MM within one "
        'day (the end after the start, 24:00 at the latest), e.g. hours: "07:00-20:00"',
    )


def window(r: Reader, value: object) -> SendWindow | None:
    """``window: {days: mon-fri, hours: "07:00-20:00"}``; either key may be left out."""
    if value is None:
        return None
    spec = r.map(value, ("window",), {"days", "hours"})
    if not spec:
        raise r.doc.error(("window",), f"the map is empty: {WINDOW_EXAMPLE}")
    days, day_text = _days(r, spec["days"]) if "days" in spec else (frozenset(range(7)), "")
    start, end, hours = _hours(r, spec["hours"]) if "hours" in spec else (0, 1440, "")
    label = " ".join(p for p in (day_text, hours) if p)
    return SendWindow(days=days, start=start, end=end, label=label)
