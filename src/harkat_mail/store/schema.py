"""The send log's schema as numbered migrations, and the version a file is at.

The version lives in ``PRAGMA user_version``. Releases before migrations never set it, so a
file at version 0 that has the tables is recognised by its columns. A PostgreSQL store can
mirror this module: the same statements (with DOUBLE PRECISION for REAL, which is 8 bytes
here) and a one-row table in place of ``user_version``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import SendLogError


@dataclass(frozen=True)
class Migration:
    """One step of the schema; its statements and the new version commit together."""

    version: int
    purpose: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "campaigns with their input fingerprints, and one row per recipient",
        (
            """CREATE TABLE campaign (
                name TEXT PRIMARY KEY,
                inputs TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE recipient (
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
                next_attempt_at REAL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (campaign, key)
            )""",
            "CREATE INDEX recipient_state ON recipient (campaign, state)",
        ),
    ),
    Migration(
        2,
        "each recipient's consent basis (CASL)",
        ("ALTER TABLE recipient ADD COLUMN consent TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        3,
        "runs that claim rows under a lease, shared relay budgets, stored suppressions",
        (
            """CREATE TABLE run (
                id TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                started_at REAL NOT NULL,
                lease_until REAL NOT NULL,
                finished_at REAL,
                taken_over INTEGER NOT NULL DEFAULT 0
            )""",
            "ALTER TABLE recipient ADD COLUMN run_id TEXT",
            "CREATE INDEX recipient_run ON recipient (run_id)",
            """CREATE TABLE relay_budget (
                relay TEXT PRIMARY KEY,
                tokens REAL NOT NULL,
                refilled_at REAL NOT NULL
            )""",
            """CREATE TABLE relay_usage (
                relay TEXT NOT NULL,
                minute INTEGER NOT NULL,
                sent INTEGER NOT NULL,
                PRIMARY KEY (relay, minute)
            )""",
            """CREATE TABLE suppression (
                address TEXT PRIMARY KEY,
                why TEXT NOT NULL,
                list_id TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "throttling replies and the first try per recipient (retry budgets across runs)",
        (
            "ALTER TABLE recipient ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE recipient ADD COLUMN first_tried_at REAL",
        ),
    ),
    Migration(
        5,
        "the relay each recipient's verdict came from (a pool of relays)",
        ("ALTER TABLE recipient ADD COLUMN relay TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        6,
        "bounces and complaints: their class, status and diagnostic; soft-bounce scores",
        (
            "ALTER TABLE recipient ADD COLUMN bounce_class TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE recipient ADD COLUMN bounce_status TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE recipient ADD COLUMN bounce_diagnostic TEXT NOT NULL DEFAULT ''",
            """CREATE TABLE soft_bounce (
                address TEXT PRIMARY KEY,
                score INTEGER NOT NULL,
                last_day INTEGER NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE bounce_seen (
                id TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
TABLES = ("campaign", "recipient")


def read_version(db: sqlite3.Connection) -> int:
    """The number stored in the file (0 when nothing ever set it)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _write_version(db: sqlite3.Connection, version: int) -> None:
    db.execute(f"PRAGMA user_version = {int(version)}")  # a PRAGMA takes no parameters


def schema_version(db: sqlite3.Connection, path: Path, new: bool = False) -> int:
    """The version the file's schema is at; refuse files that are no send log we can use.

    ``new`` allows an empty database (version 0): only a log being created is one.
    """
    stored = read_version(db)
    if stored > SCHEMA_VERSION:
        raise SendLogError(
            f"{path}: the send log was written by a newer harkat-mail (schema version {stored}; "
            f"this one knows up to {SCHEMA_VERSION}); upgrade harkat-mail to use it"
        )
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables and stored == 0 and new:
        return 0
    missing = [t for t in TABLES if t not in tables]
    if missing:
        # Starting over would send everyone the message again, so never treat it as new.
        what = "an empty SQLite database" if not tables else "a SQLite database"
        todo = (
            "delete it if nothing was ever sent with it"
            if tables <= set(TABLES)
            else "set send_log in the campaign YAML to another file"
        )
        raise SendLogError(
            f"{path}: not a usable send log: {what} without the {' and '.join(missing)} "
            f"table{'s' if len(missing) > 1 else ''}; restore the send log from a backup, "
            f"or {todo}"
        )
    if stored:
        return stored
    # Written before migrations: version 2 added the consent column.
    columns = {row[1] for row in db.execute("PRAGMA table_info(recipient)")}
    return 2 if "consent" in columns else 1


def upgrade(db: sqlite3.Connection, path: Path, new: bool = False) -> None:
    """Apply the missing migrations, one transaction each, and record the version reached.

    Each step re-reads the version under the write lock, so two processes opening an old
    log at once apply every step exactly once.
    """
    found = schema_version(db, path, new)
    for migration in (m for m in MIGRATIONS if m.version > found):
        with transaction(db):
            if schema_version(db, path, new) < migration.version:
                # One statement at a time: executescript() would COMMIT mid-migration.
                for statement in migration.statements:
                    db.execute(statement)
                _write_version(db, migration.version)
    if read_version(db) < SCHEMA_VERSION:  # a log from before migrations, already current
        with transaction(db):
            _write_version(db, schema_version(db, path))


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; on any error roll back, keeping the first error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (e.g. on a damaged page): ROLLBACK would fail.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
