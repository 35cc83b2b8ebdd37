"""The SQLite send log: the only writer of delivery state, and the truth about who got what."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import SendLogError
from ..models import Contact, DeliveryResult, Outcome, Rejected, State, reason_label
from .files import open_for_writing, open_read_only, sqlite_errors
from .schema import transaction

# The report's columns in their order since before migrations (version 2 appended consent).
_COLUMNS = (
    "campaign, key, email, member_id, language, source, row, state, reason, attempts, code,"
    " reply, message_id, consent, next_attempt_at, created_at, updated_at"
)
_OUTCOME_STATE = {
    Outcome.SENT: State.SENT,
    Outcome.DEFERRED: State.DEFERRED,
    Outcome.FAILED: State.FAILED,
    Outcome.UNKNOWN: State.UNKNOWN,
}
# A state change: a key going to `sending`, or a verdict with the time of its next try.
Change = str | tuple[DeliveryResult, float | None]
P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[Concatenate[SendLog, P], R]) -> Callable[Concatenate[SendLog, P], R]:
    """Every operation reports a SQLite failure as one SendLogError naming the file."""

    @wraps(method)
    def wrapper(self: SendLog, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with sqlite_errors(self.path):
            return method(self, *args, **kwargs)

    return wrapper


class SendLog:
    """One SQLite file in WAL mode; every state change is its own committed transaction."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open (or create and migrate) the log; ``read_only`` never writes or creates it."""
        self.path = path
        with sqlite_errors(path):
            self.db = open_read_only(path) if read_only else open_for_writing(path)

    @_guarded
    def close(self) -> None:
        """Close the database file."""
        self.db.close()

    def __enter__(self) -> SendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guarded
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

    @_guarded
    def recover(self, campaign: str) -> int:
        """Rows a dead run left in `sending` become `unknown`: maybe delivered, never resent."""
        cur = self.db.execute(
            "UPDATE recipient SET state = ?, reason = 'interrupted while sending', updated_at = ?"
            " WHERE campaign = ? AND state = ?",
            (State.UNKNOWN, time.time(), campaign, State.SENDING),
        )
        return cur.rowcount

    @_guarded
    def plan(
        self,
        campaign: str,
        contacts: Iterable[Contact],
        rejected: Iterable[Rejected],
        message_ids: Mapping[str, str],
    ) -> None:
        """Add a `pending` row per new contact and a `skipped` row per rejected input row."""
        now = time.time()
        with transaction(self.db):
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

    @_guarded
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

    @_guarded
    def mark_sending(self, campaign: str, key: str) -> None:
        """Committed before DATA: if the process dies now, the row reads `unknown` later."""
        self.db.execute(
            "UPDATE recipient SET state = ?, attempts = attempts + 1, updated_at = ?"
            " WHERE campaign = ? AND key = ?",
            (State.SENDING, time.time(), campaign, key),
        )

    @_guarded
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

    @_guarded
    def apply(self, campaign: str, changes: Iterable[Change]) -> None:
        """Several state changes in one durable transaction (one fsync for all of them)."""
        with transaction(self.db):
            for change in changes:
                if isinstance(change, str):
                    self.mark_sending(campaign, change)
                else:
                    self.record(campaign, *change)

    @_guarded
    def attempts(self, campaign: str) -> dict[str, int]:
        """Tries made so far per recipient (for the retry limit across runs)."""
        rows = self.db.execute(
            "SELECT key, attempts FROM recipient WHERE campaign = ? AND attempts > 0", (campaign,)
        )
        return {key: n for key, n in rows}

    @_guarded
    def recent_sends(self, since: float) -> list[float]:
        """Times of messages handed to the relay since ``since``, in every campaign of the log."""
        rows = self.db.execute(
            "SELECT updated_at FROM recipient WHERE state IN (?, ?, ?) AND updated_at >= ?",
            (State.SENT, State.SENDING, State.UNKNOWN, since),
        )
        return [t for (t,) in rows]

    @_guarded
    def last_errors(self, campaign: str, limit: int = 5) -> list[tuple[str, str, int | None, str]]:
        """The latest failed, deferred or unknown recipients: (email, state, code, reply)."""
        rows = self.db.execute(
            "SELECT email, state, code, reply FROM recipient WHERE campaign = ? AND state IN"
            " (?, ?, ?) ORDER BY updated_at DESC LIMIT ?",
            (campaign, State.FAILED, State.DEFERRED, State.UNKNOWN, limit),
        )
        return list(rows)

    @_guarded
    def counts(self, campaign: str) -> dict[str, int]:
        """Rows per state for a campaign."""
        rows = self.db.execute(
            "SELECT state, COUNT(*) FROM recipient WHERE campaign = ? GROUP BY state", (campaign,)
        )
        return {state: count for state, count in rows}

    @_guarded
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
        with sqlite_errors(self.path):  # a generator: errors surface while it is read
            cur = self.db.execute(
                f"SELECT {_COLUMNS} FROM recipient WHERE campaign = ? ORDER BY source, row",
                (campaign,),
            )
            names = [d[0] for d in cur.description]
            for values in cur:
                yield dict(zip(names, values, strict=True))
