"""Soft-bounce scores of a project whose send logs are SQLite files: one small file for all.

Each campaign's SQLite send log is a file of its own, so a score kept there starts from nothing
at every appeal and a mailbox full three appeals running is never suppressed. The scores live
instead in ``bounce-scores.sqlite`` next to the project's ``suppression.txt`` (which every
campaign reads already): the same place, the same lifetime, and SQLite's own locking for
campaigns processed at the same time. A PostgreSQL send log keeps them in its shared tables.

A soft bounce counts once per (message, member): the same bounce read again, from the same
mailbox or for another campaign, on any day, changes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from .bouncerules import FORGET_DAYS, next_score
from .files import guarded
from .schema import transaction

FILE_NAME = "bounce-scores.sqlite"
_TABLES = (
    "CREATE TABLE IF NOT EXISTS soft_bounce (member TEXT PRIMARY KEY, score INTEGER NOT NULL,"
    " last_day INTEGER NOT NULL, updated_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS soft_counted (bounce_id TEXT NOT NULL, member TEXT NOT NULL,"
    " PRIMARY KEY (bounce_id, member))",
)


class SoftScores:
    """The project's soft-bounce scores, by member key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = self._open()

    @guarded
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Called from asyncio.to_thread: any pool thread, one call at a time.
        db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # a counted bounce survives a power cut
        for statement in _TABLES:
            db.execute(statement)
        return db

    @guarded
    def count(self, member: str, day: int, bounce_id: str) -> int:
        """Count message ``bounce_id``'s soft bounce for ``member`` on ``day``; the score."""
        member = member.strip().lower()
        with transaction(self.db):
            new = self.db.execute(
                "INSERT INTO soft_counted (bounce_id, member) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (bounce_id, member),
            ).rowcount
            row = self.db.execute(
                "SELECT score, last_day FROM soft_bounce WHERE member = ?", (member,)
            ).fetchone()
            old = None if row is None else (int(row[0]), int(row[1]))
            if not new:  # counted already: its score as it stands
                return 0 if old is None or day - old[1] > FORGET_DAYS else old[0]
            score = next_score(old, day)
            self.db.execute(
                "INSERT INTO soft_bounce (member, score, last_day, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (member) DO UPDATE SET score = excluded.score,"
                " last_day = MAX(soft_bounce.last_day, excluded.last_day),"
                " updated_at = excluded.updated_at",
                (member, score, day, time.time()),
            )
            return score

    def close(self) -> None:
        self.db.close()
