"""The SQLite send log: the only writer of delivery state, and the truth about who got what."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SendLogError
from ..models import Contact, Rejected, State, reason_label
from .files import guarded, open_for_writing, open_read_only, sqlite_errors
from .protocol import REPORT_COLUMNS, code_patterns
from .schema import transaction
from .sqlitebounces import Bounces
from .sqliteclaims import Claims, identity


class SendLog(Claims, Bounces):
    """One SQLite file in WAL mode; every state change is its own committed transaction."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open (or create and migrate) the log; ``read_only`` never writes or creates it."""
        self.path = path
        with sqlite_errors(path):
            self.db = open_read_only(path) if read_only else open_for_writing(path)
            self.identity = identity(path)

    @guarded
    def close(self) -> None:
        """Close the database file."""
        self.db.close()

    def __enter__(self) -> SendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @guarded
    def check_inputs(self, campaign: str, inputs: Mapping[str, str], force: bool) -> None:
        """Refuse to resume when the YAML, list or template changed, unless forced."""
        with transaction(self.db):  # two runs starting together: one inserts, one compares
            row = self.db.execute(
                "SELECT inputs FROM campaign WHERE name = ?", (campaign,)
            ).fetchone()
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
        with transaction(self.db):
            self.db.execute(
                "UPDATE campaign SET inputs = ? WHERE name = ?",
                (json.dumps(dict(inputs)), campaign),
            )
            self.db.execute(
                "UPDATE recipient SET next_attempt_at = NULL WHERE campaign = ?"
                " AND state = ? AND run_id IS NULL",
                (campaign, State.DEFERRED),
            )

    @guarded
    def reopen_failed(self, campaign: str, codes: Sequence[str]) -> int:
        """`failed` rows no run holds, matching ``codes`` if any, become `pending` again."""
        patterns = code_patterns(codes)
        match = " OR ".join("CAST(code AS TEXT) LIKE ?" for _ in patterns)
        with transaction(self.db):
            cur = self.db.execute(
                "UPDATE recipient SET state = ?, attempts = 0, next_attempt_at = NULL,"
                " updated_at = ? WHERE campaign = ? AND state = ? AND run_id IS NULL"
                + (f" AND ({match})" if patterns else ""),
                (State.PENDING, time.time(), campaign, State.FAILED, *patterns),
            )
            return cur.rowcount

    @guarded
    def next_attempt(self, campaign: str) -> float | None:
        """When the earliest `deferred` row is due."""
        row = self.db.execute(
            "SELECT MIN(next_attempt_at) FROM recipient WHERE campaign = ? AND state = ?",
            (campaign, State.DEFERRED),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    @guarded
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

    @guarded
    def last_errors(self, campaign: str, limit: int = 5) -> list[tuple[str, str, int | None, str]]:
        """The latest failed, deferred or unknown recipients: (email, state, code, reply)."""
        rows = self.db.execute(
            "SELECT email, state, code, reply FROM recipient WHERE campaign = ? AND state IN"
            " (?, ?, ?) ORDER BY updated_at DESC LIMIT ?",
            (campaign, State.FAILED, State.DEFERRED, State.UNKNOWN, limit),
        )
        return list(rows)

    @guarded
    def counts(self, campaign: str) -> dict[str, int]:
        """Rows per state for a campaign."""
        rows = self.db.execute(
            "SELECT state, COUNT(*) FROM recipient WHERE campaign = ? GROUP BY state", (campaign,)
        )
        return {state: count for state, count in rows}

    @guarded
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
                f"SELECT {REPORT_COLUMNS} FROM recipient WHERE campaign = ? ORDER BY source, row",
                (campaign,),
            )
            names = [d[0] for d in cur.description]
            for values in cur:
                yield dict(zip(names, values, strict=True))
