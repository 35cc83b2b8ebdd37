"""The SQLite send log, part two: runs, leases, claims, verdicts, budgets, suppressions.

A claim transaction first takes over expired runs, so the rows of a run that died become
available to the next claim, whoever makes it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ClaimLost, SendLogError
from ..models import Grant, Limits, Outcome, State
from . import budget
from .files import guarded
from .protocol import LOST, OUTCOME_STATE, SUPPRESSED, Change, Claim, RunInfo, RunRow
from .schema import transaction

# Due: pending, unknown when asked for, deferred once its wait is over.
_DUE = "state = ? OR state = ? OR (state = ? AND COALESCE(next_attempt_at, 0) <= ?)"


def _due_args(now: float, retry_unknown: bool) -> tuple[str, str, str, float]:
    unknown = State.UNKNOWN if retry_unknown else State.PENDING
    return (State.PENDING, unknown, State.DEFERRED, now)


def identity(path: Path) -> tuple[int, int]:
    """The file's device and inode: what a file replaced or deleted under us no longer has."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


class Claims:
    """What ``SendLog`` does for runs sharing a campaign (it supplies path, db, identity)."""

    path: Path
    db: sqlite3.Connection
    identity: tuple[int, int]

    def _same_file(self) -> None:
        """Refuse to go on when the file at the path is no longer the one this run writes:
        deleted or replaced mid-run, a later run would start over and send everyone again."""
        try:
            now = identity(self.path)
        except OSError:
            now = None
        if now != self.identity:
            raise SendLogError(
                f"{self.path}: the send log was removed or replaced while this run used it; "
                "stop every run on it and restore the file before sending again"
            )

    @guarded
    def start_run(self, run: RunInfo) -> None:
        """Register a run and its lease."""
        now = time.time()
        self.db.execute(
            "INSERT INTO run (id, campaign, host, pid, started_at, lease_until)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run.id, run.campaign, run.host, run.pid, now, now + run.lease),
        )

    @guarded
    def renew(self, run_id: str, lease: float) -> bool:
        """Extend the lease; False when the run was taken over (its rows are no longer its)."""
        self._same_file()
        cur = self.db.execute(
            "UPDATE run SET lease_until = ? WHERE id = ? AND taken_over = 0"
            " AND finished_at IS NULL",
            (time.time() + lease, run_id),
        )
        return cur.rowcount == 1

    @guarded
    def finish_run(self, run_id: str) -> None:
        """Release every row still held and mark the run finished.

        A row still `sending` (its verdict could not be written) stays until the next claim
        or recover, which turns it `unknown`: the message may have arrived.
        """
        with transaction(self.db):
            self.db.execute(
                "UPDATE recipient SET run_id = NULL WHERE run_id = ? AND state != ?",
                (run_id, State.SENDING),
            )
            self.db.execute("UPDATE run SET finished_at = ? WHERE id = ?", (time.time(), run_id))

    @guarded
    def expire(self, run_ids: Sequence[str]) -> None:
        """End these runs' leases now: the next claim takes their rows over."""
        with transaction(self.db):
            self.db.executemany(
                "UPDATE run SET lease_until = 0 WHERE id = ? AND finished_at IS NULL",
                ((run_id,) for run_id in run_ids),
            )

    @guarded
    def recover(self, campaign: str) -> int:
        """Take over expired runs: their `sending` rows become `unknown`, the rest due again."""
        with transaction(self.db):
            return self._take_over(campaign, time.time())

    def _take_over(self, campaign: str, now: float) -> int:
        self.db.execute(
            "UPDATE run SET taken_over = 1 WHERE campaign = ? AND finished_at IS NULL"
            " AND taken_over = 0 AND lease_until < ?",
            (campaign, now),
        )
        # Rows of runs that are over (taken over, or finished with a row still `sending`).
        lost = (
            "SELECT id FROM run WHERE campaign = ? AND (taken_over = 1 OR finished_at IS NOT NULL)"
        )
        # `sending` with no run: left by a release from before claims, killed mid-send.
        cur = self.db.execute(
            "UPDATE recipient SET state = ?, reason = 'interrupted while sending', run_id = NULL,"
            f" updated_at = ? WHERE campaign = ? AND state = ? AND (run_id IS NULL OR run_id IN"
            f" ({lost}))",
            (State.UNKNOWN, now, campaign, State.SENDING, campaign),
        )
        self.db.execute(f"UPDATE recipient SET run_id = NULL WHERE run_id IN ({lost})", (campaign,))
        return cur.rowcount

    @guarded
    def claim(self, campaign: str, run_id: str, limit: int, retry_unknown: bool) -> list[Claim]:
        """Up to ``limit`` due rows nobody holds, in list order, now held by ``run_id``."""
        self._same_file()
        now = time.time()
        with transaction(self.db):
            self._take_over(campaign, now)
            alive = self.db.execute(
                "SELECT 1 FROM run WHERE id = ? AND taken_over = 0 AND finished_at IS NULL",
                (run_id,),
            ).fetchone()
            rows = (
                []
                if alive is None
                else self.db.execute(
                    "UPDATE recipient SET run_id = ? WHERE rowid IN (SELECT rowid FROM recipient"
                    f" WHERE campaign = ? AND run_id IS NULL AND ({_DUE}) ORDER BY rowid LIMIT ?)"
                    " RETURNING rowid, key, attempts, throttled, first_tried_at",
                    (run_id, campaign, *_due_args(now, retry_unknown), limit),
                ).fetchall()
            )
        if alive is None:  # raised after the commit: the take-over above must stand
            raise ClaimLost(f"{self.path}: {LOST}")
        return [Claim(key, n, throttled, first) for _, key, n, throttled, first in sorted(rows)]

    @guarded
    def release(self, campaign: str, run_id: str, keys: Sequence[str]) -> None:
        """Give rows back unsent (e.g. members this run's list no longer has)."""
        with transaction(self.db):
            self.db.executemany(
                "UPDATE recipient SET run_id = NULL WHERE campaign = ? AND key = ? AND run_id = ?"
                " AND state != ?",
                ((campaign, key, run_id, State.SENDING) for key in keys),
            )

    @guarded
    def skip_suppressed(self, campaign: str, run_id: str | None) -> list[str]:
        """Unsent rows whose address the store now suppresses become `skipped`; their keys."""
        held = "run_id IS NULL" if run_id is None else "run_id = ?"
        rows = self.db.execute(
            f"UPDATE recipient SET state = ?, reason = ?, run_id = NULL, updated_at = ?"
            f" WHERE campaign = ? AND {held} AND state IN (?, ?, ?)"
            " AND key IN (SELECT address FROM suppression) RETURNING key",
            (
                State.SKIPPED,
                SUPPRESSED,
                time.time(),
                campaign,
                *((run_id,) if run_id is not None else ()),
                State.PENDING,
                State.DEFERRED,
                State.UNKNOWN,
            ),
        ).fetchall()
        return [key for (key,) in rows]

    @guarded
    def count_due(self, campaign: str, retry_unknown: bool) -> int:
        """Due rows that no run holds."""
        row = self.db.execute(
            f"SELECT COUNT(*) FROM recipient WHERE campaign = ? AND run_id IS NULL AND ({_DUE})",
            (campaign, *_due_args(time.time(), retry_unknown)),
        ).fetchone()
        return int(row[0])

    @guarded
    def apply(self, campaign: str, run_id: str, changes: Iterable[Change]) -> list[str]:
        """Several changes in one durable transaction, each only if ``run_id`` holds the row.

        ``sending`` is committed before DATA; a verdict releases the row, but a deferral that
        this run will retry stays held. Returns the keys refused (the claim was lost).
        """
        self._same_file()
        refused: list[str] = []
        now = time.time()
        with transaction(self.db):
            for change in changes:
                if isinstance(change, str):
                    key = change
                    cur = self.db.execute(
                        "UPDATE recipient SET state = ?, attempts = attempts + 1, updated_at = ?,"
                        " first_tried_at = COALESCE(first_tried_at, updated_at)"
                        " WHERE campaign = ? AND key = ? AND run_id = ?"
                        # Unsubscribed while this run held the row: refused, never sent.
                        " AND key NOT IN (SELECT address FROM suppression)",
                        (State.SENDING, now, campaign, key, run_id),
                    )
                else:
                    result, retry_at = change
                    key = result.key
                    keep = run_id if result.outcome is Outcome.DEFERRED else None
                    # A try that reached the relay counts once: at `sending` if it got there.
                    tried = int(result.tried)
                    cur = self.db.execute(
                        "UPDATE recipient SET attempts = attempts + (CASE WHEN state = ? THEN 0"
                        " ELSE ? END), throttled = throttled + ?, first_tried_at ="
                        " COALESCE(first_tried_at, CASE WHEN ? THEN ? END), state = ?, code = ?,"
                        " reply = ?, next_attempt_at = ?, updated_at = ?, run_id = ?,"
                        " relay = COALESCE(NULLIF(?, ''), relay)"
                        " WHERE campaign = ? AND key = ? AND run_id = ?",
                        (
                            State.SENDING,
                            tried,
                            int(result.throttled),
                            tried,
                            now,
                            OUTCOME_STATE[result.outcome],
                            result.code,
                            result.reply[:500],
                            retry_at,
                            now,
                            keep,
                            result.relay,
                            campaign,
                            key,
                            run_id,
                        ),
                    )
                if cur.rowcount != 1:
                    refused.append(key)
        return refused

    @guarded
    def take(self, relay: str, want: int, limits: Limits) -> Grant:
        """Take from the relay's shared budget (see ``budget.take``)."""
        with transaction(self.db):
            return budget.take(self.db, relay, want, limits, time.time())

    @guarded
    def runs(self, campaign: str) -> list[RunRow]:
        """Unfinished runs of the campaign with the rows each holds."""
        now = time.time()
        rows = self.db.execute(
            "SELECT r.id, r.host, r.pid, r.started_at, r.lease_until,"
            " (SELECT COUNT(*) FROM recipient WHERE run_id = r.id)"
            " FROM run r WHERE r.campaign = ? AND r.finished_at IS NULL AND r.taken_over = 0"
            " ORDER BY r.started_at",
            (campaign,),
        )
        return [
            RunRow(run_id, host, pid, started, until, held, expired=until < now)
            for run_id, host, pid, started, until, held in rows
        ]

    @guarded
    def suppressions(self) -> set[str]:
        """Addresses suppressed in this store."""
        return {address for (address,) in self.db.execute("SELECT address FROM suppression")}

    @guarded
    def add_suppression(self, address: str, why: str, list_id: str) -> bool:
        """Record ``address`` as suppressed; False when it already was."""
        cur = self.db.execute(
            "INSERT INTO suppression (address, why, list_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (address) DO NOTHING",
            (address.strip().lower(), why, list_id, time.time()),
        )
        return cur.rowcount == 1
