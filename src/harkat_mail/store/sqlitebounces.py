"""The SQLite send log, part three: bounces, complaints and soft-bounce scores."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from ..models import State
from .bouncerules import DIAGNOSTIC_CHARS, next_score, replaces
from .files import guarded
from .schema import transaction


class Bounces:
    """What ``SendLog`` does with bounces (it supplies ``db``)."""

    db: sqlite3.Connection

    @guarded
    def mark_bounced(
        self, campaign: str, key: str, bounce_class: str, status: str, diagnostic: str
    ) -> bool:
        """Record a bounce (or ``complaint``) on a member's row; False when nothing changed."""
        state = State.COMPLAINED if bounce_class == "complaint" else State.BOUNCED
        with transaction(self.db):
            row = self.db.execute(
                "SELECT state, bounce_class FROM recipient WHERE campaign = ? AND key = ?",
                (campaign, key),
            ).fetchone()
            if row is None or not replaces(row[0], row[1], bounce_class):
                return False
            self.db.execute(
                "UPDATE recipient SET state = ?, bounce_class = ?, bounce_status = ?,"
                " bounce_diagnostic = ?, updated_at = ? WHERE campaign = ? AND key = ?",
                (
                    state,
                    bounce_class,
                    status,
                    diagnostic[:DIAGNOSTIC_CHARS],
                    time.time(),
                    campaign,
                    key,
                ),
            )
            return True

    @guarded
    def soft_bounce(self, address: str, day: int) -> int:
        """Count a soft bounce for ``address`` on ``day`` (days since 1970); its new score."""
        address = address.strip().lower()
        with transaction(self.db):
            row = self.db.execute(
                "SELECT score, last_day FROM soft_bounce WHERE address = ?", (address,)
            ).fetchone()
            score = next_score(None if row is None else (row[0], row[1]), day)
            self.db.execute(
                "INSERT INTO soft_bounce (address, score, last_day, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET score = excluded.score,"
                " last_day = MAX(soft_bounce.last_day, excluded.last_day),"
                " updated_at = excluded.updated_at",
                (address, score, day, time.time()),
            )
            return score

    @guarded
    def bounce_seen(self, bounce_id: str) -> bool:
        """Whether the bounce message with this id was processed already."""
        row = self.db.execute("SELECT 1 FROM bounce_seen WHERE id = ?", (bounce_id,)).fetchone()
        return row is not None

    @guarded
    def remember_bounces(self, bounce_ids: Sequence[str], campaign: str) -> None:
        """Note bounce messages as processed, in one transaction: reading them again changes
        nothing."""
        now = time.time()
        with transaction(self.db):
            self.db.executemany(
                "INSERT INTO bounce_seen (id, campaign, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                [(bounce_id, campaign, now) for bounce_id in bounce_ids],
            )

    @guarded
    def bounce_counts(self, campaign: str) -> dict[str, int]:
        """Bounced and complained rows per class (``hard``, ``soft``, ``block``, ``complaint``)."""
        rows = self.db.execute(
            "SELECT bounce_class, COUNT(*) FROM recipient WHERE campaign = ? AND state IN (?, ?)"
            " GROUP BY bounce_class",
            (campaign, State.BOUNCED, State.COMPLAINED),
        )
        return {cls: int(count) for cls, count in rows}
