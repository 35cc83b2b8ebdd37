"""The SQLite send log: the only writer of delivery state, and the truth about who got what."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import SendLogError
from ..models import Contact, DeliveryResult, Outcome, Rejected, State, reason_label

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign (
    name TEXT PRIMARY KEY,
    inputs TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recipient (
    campaign TEXT NOT NULL,
    key TEXT NOT NULL,
    email TEXT NOT NULL,
    member_id TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    row INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER,
    reply TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    consent TEXT NOT NULL DEFAULT '',
    next_attempt_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (campaign, key)
);
CREATE INDEX IF NOT EXISTS recipient_state ON recipient (campaign, state);
"""
_OUTCOME_STATE = {
    Outcome.SENT: State.SENT,
    Outcome.DEFERRED: State.DEFERRED,
    Outcome.FAILED: State.FAILED,
    Outcome.UNKNOWN: State.UNKNOWN,
}
# A state change: a key going to `sending`, or a verdict with the time of its next try.
Change = str | tuple[DeliveryResult, float | None]


class SendLog:
    """One SQLite file in WAL mode; every state change is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One writer thread at a time (see BatchedLog), so the connection may change threads.
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed `sending` or `sent` survives power loss, not only a crash.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(recipient)")}
            if "consent" not in columns:  # a log written before consent was recorded
                self.db.execute("ALTER TABLE recipient ADD COLUMN consent TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error as exc:
            raise SendLogError(f"{path}: cannot open the send log ({exc})") from None

    def close(self) -> None:
        """Close the database file."""
        self.db.close()

    def __enter__(self) -> SendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_inputs(self, campaign: str, inputs: Mapping[str, str], force: bool) -> None:
        """Refuse to resume when the YAML, list or template changed, unless forced."""
        row = self.db.execute("SELECT inputs FROM campaign WHERE name = ?", (campaign,)).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO campaign (name, inputs, created_at) VALUES (?, ?, ?)",
                (campaign, json.dumps(dict(inputs)), time.time()),
            )
            return
        before = json.loads(row[0])
        changed = sorted(k for k in inputs if before.get(k) != inputs[k])
        if not changed:
            return
        if not force:
            raise SendLogError(
                f"{self.path}: campaign {campaign!r} was first sent with a different "
                f"{', '.join(changed)}; resume with --force to send the changed version"
            )
        self.db.execute(
            "UPDATE campaign SET inputs = ? WHERE name = ?", (json.dumps(dict(inputs)), campaign)
        )

    def recover(self, campaign: str) -> int:
        """Rows a dead run left in `sending` become `unknown`: maybe delivered, never resent."""
        cur = self.db.execute(
            "UPDATE recipient SET state = ?, reason = 'interrupted while sending', updated_at = ?"
            " WHERE campaign = ? AND state = ?",
            (State.UNKNOWN, time.time(), campaign, State.SENDING),
        )
        return cur.rowcount

    def plan(
        self,
        campaign: str,
        contacts: Iterable[Contact],
        rejected: Iterable[Rejected],
        message_ids: Mapping[str, str],
    ) -> None:
        """Add a `pending` row per new contact and a `skipped` row per rejected input row."""
        now = time.time()
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO recipient (campaign, key, email, member_id, language,"
                " source, row, state, message_id, consent, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        campaign,
                        c.key,
                        c.email,
                        c.member_id,
                        c.language,
                        c.source,
                        c.row,
                        State.PENDING,
                        message_ids[c.key],
                        c.consent,
                        now,
                        now,
                    )
                    for c in contacts
                ),
            )
            self.db.executemany(
                "INSERT INTO recipient (campaign, key, email, source, row, state, reason,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (campaign, key) DO UPDATE SET reason = excluded.reason,"
                " email = excluded.email, updated_at = excluded.updated_at"
                " WHERE recipient.state = 'skipped'",
                (
                    (
                        campaign,
                        f"skip:{r.source}:{r.row}",
                        r.email,
                        r.source,
                        r.row,
                        State.SKIPPED,
                        r.reason,
                        now,
                        now,
                    )
                    for r in rejected
                ),
            )

    def due(self, campaign: str, now: float | None = None, retry_unknown: bool = False) -> set[str]:
        """Keys to send now: `pending`, `deferred` whose wait is over, `unknown` if asked."""
        rows = self.db.execute(
            "SELECT key FROM recipient WHERE campaign = ? AND (state = ? OR state = ? OR"
            " (state = ? AND COALESCE(next_attempt_at, 0) <= ?))",
            (
                campaign,
                State.PENDING,
                State.UNKNOWN if retry_unknown else State.PENDING,
                State.DEFERRED,
                now if now is not None else time.time(),
            ),
        )
        return {key for (key,) in rows}

    def mark_sending(self, campaign: str, key: str) -> None:
        """Committed before DATA: if the process dies now, the row reads `unknown` later."""
        self.db.execute(
            "UPDATE recipient SET state = ?, attempts = attempts + 1, updated_at = ?"
            " WHERE campaign = ? AND key = ?",
            (State.SENDING, time.time(), campaign, key),
        )

    def record(self, campaign: str, result: DeliveryResult, retry_at: float | None = None) -> None:
        """Store the relay's verdict; a deferral carries the time of its next try."""
        self.db.execute(
            "UPDATE recipient SET state = ?, code = ?, reply = ?, next_attempt_at = ?,"
            " updated_at = ? WHERE campaign = ? AND key = ?",
            (
                _OUTCOME_STATE[result.outcome],
                result.code,
                result.reply[:500],
                retry_at,
                time.time(),
                campaign,
                result.key,
            ),
        )

    def apply(self, campaign: str, changes: Iterable[Change]) -> None:
        """Several state changes in one durable transaction (one fsync for all of them)."""
        with self._transaction():
            for change in changes:
                if isinstance(change, str):
                    self.mark_sending(campaign, change)
                else:
                    self.record(campaign, *change)

    def attempts(self, campaign: str) -> dict[str, int]:
        """Tries made so far per recipient (for the retry limit across runs)."""
        rows = self.db.execute(
            "SELECT key, attempts FROM recipient WHERE campaign = ? AND attempts > 0", (campaign,)
        )
        return {key: n for key, n in rows}

    def recent_sends(self, since: float) -> list[float]:
        """Times of messages handed to the relay since ``since``, in every campaign of the log."""
        rows = self.db.execute(
            "SELECT updated_at FROM recipient WHERE state IN (?, ?, ?) AND updated_at >= ?",
            (State.SENT, State.SENDING, State.UNKNOWN, since),
        )
        return [t for (t,) in rows]

    def last_errors(self, campaign: str, limit: int = 5) -> list[tuple[str, str, int | None, str]]:
        """The latest failed, deferred or unknown recipients: (email, state, code, reply)."""
        rows = self.db.execute(
            "SELECT email, state, code, reply FROM recipient WHERE campaign = ? AND state IN"
            " (?, ?, ?) ORDER BY updated_at DESC LIMIT ?",
            (campaign, State.FAILED, State.DEFERRED, State.UNKNOWN, limit),
        )
        return list(rows)

    def counts(self, campaign: str) -> dict[str, int]:
        """Rows per state for a campaign."""
        rows = self.db.execute(
            "SELECT state, COUNT(*) FROM recipient WHERE campaign = ? GROUP BY state", (campaign,)
        )
        return {state: count for state, count in rows}

    def skipped_reasons(self, campaign: str) -> dict[str, int]:
        """Skipped rows per reason (reasons grouped by their first words)."""
        out: dict[str, int] = {}
        rows = self.db.execute(
            "SELECT reason FROM recipient WHERE campaign = ? AND state = ?",
            (campaign, State.SKIPPED),
        )
        for (reason,) in rows:
            label = reason_label(reason)
            out[label] = out.get(label, 0) + 1
        return out

    def rows(self, campaign: str) -> Iterator[dict[str, Any]]:
        """Every recipient row of a campaign, as plain dicts, in input order."""
        cur = self.db.execute(
            "SELECT * FROM recipient WHERE campaign = ? ORDER BY source, row", (campaign,)
        )
        names = [d[0] for d in cur.description]
        for values in cur:
            yield dict(zip(names, values, strict=True))

    def _transaction(self) -> _Tx:
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
