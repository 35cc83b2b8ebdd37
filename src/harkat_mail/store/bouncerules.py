"""What a bounce or complaint does to a send-log row; shared by the SQLite and PostgreSQL logs.

A row takes a bounce when it was sent (or may have been: ``unknown``, or refused at RCPT:
``failed``). A later verdict replaces an earlier one only when it is graver: a complaint over
any bounce, a hard bounce over a block or a soft one, a block over a soft one. Reading the
same bounce again therefore changes nothing.
"""

from __future__ import annotations

from ..models import State

RANK = {"soft": 1, "block": 2, "hard": 3, "complaint": 4}
TAKES_BOUNCE = (State.SENT, State.UNKNOWN, State.FAILED)
FORGET_DAYS = 30  # a soft-bounce score not raised for this long starts again from nothing
DIAGNOSTIC_CHARS = 500


def replaces(state: str, old_class: str, new_class: str) -> bool:
    """Whether a ``new_class`` verdict changes a row in ``state`` holding ``old_class``."""
    if state in TAKES_BOUNCE:
        return True
    if state in (State.BOUNCED, State.COMPLAINED):
        return RANK.get(new_class, 0) > RANK.get(old_class, 0)
    return False


def next_score(old: tuple[int, int] | None, day: int) -> int:
    """A soft-bounce score after a bounce on ``day``: +1 a day at most, forgotten after 30.

    ``old`` is (score, last day counted), or None for a first soft bounce.
    """
    if old is None or day - old[1] > FORGET_DAYS:
        return 1
    score, last = old
    return score + 1 if day > last else score
