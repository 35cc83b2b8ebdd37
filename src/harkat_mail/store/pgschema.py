"""The PostgreSQL send log's schema: schema.py's numbered migrations, mirrored.

Differences from SQLite, each for a reason: DOUBLE PRECISION for REAL (both 8 bytes); a
BIGSERIAL ``seq`` for list order (PostgreSQL has no rowid); the version in a one-row
``schema_version`` table (there is no ``PRAGMA user_version``); ``recipient_run`` indexes held
rows only; and ``recipient_due`` indexes exactly the rows a claim looks for, so that claiming
from a long list costs the same at its end as at its start.

There were never PostgreSQL send logs from before migrations, so a database with a
``campaign`` or ``recipient`` table but no ``schema_version`` is not one of ours and is refused.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..errors import SendLogError
from . import schema
from .schema import Migration

# Advisory lock keys of harkat-mail's own: pg_advisory_xact_lock(int, int) takes a pair,
# whose first number ("hrKt", "hrKu") keeps clear of other applications sharing the database.
SCHEMA_LOCK = (0x68724B74, 1)  # migrations
BUDGET_LOCKS = 0x68724B75  # a relay's budget: (BUDGET_LOCKS, hashtext(relay))

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "campaigns with their input fingerprints, and one row per recipient",
        (
            """CREATE TABLE campaign (
                name TEXT PRIMARY KEY,
                inputs TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE recipient (
                seq BIGSERIAL NOT NULL,  -- list order (no index of its own: see recipient_due)
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
                next_attempt_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
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
                pid BIGINT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                lease_until DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION,
                taken_over INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX run_campaign ON run (campaign) WHERE finished_at IS NULL",
            "ALTER TABLE recipient ADD COLUMN run_id TEXT",
            "CREATE INDEX recipient_run ON recipient (run_id) WHERE run_id IS NOT NULL",
            # The claim's WHERE repeats this predicate word for word (postgres.DUE): the
            # planner then uses the index even for a prepared, generic plan.
            "CREATE INDEX recipient_due ON recipient (campaign, seq) WHERE run_id IS NULL"
            " AND state IN ('pending', 'unknown', 'deferred')",
            """CREATE TABLE relay_budget (
                relay TEXT PRIMARY KEY,
                tokens DOUBLE PRECISION NOT NULL,
                refilled_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE relay_usage (
                relay TEXT NOT NULL,
                minute BIGINT NOT NULL,
                sent INTEGER NOT NULL,
                PRIMARY KEY (relay, minute)
            )""",
            """CREATE TABLE suppression (
                address TEXT PRIMARY KEY,
                why TEXT NOT NULL,
                list_id TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "throttling replies and the first try per recipient (retry budgets across runs)",
        (
            "ALTER TABLE recipient ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE recipient ADD COLUMN first_tried_at DOUBLE PRECISION",
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
                last_day BIGINT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE bounce_seen (
                id TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
assert SCHEMA_VERSION == schema.SCHEMA_VERSION, "mirror every SQLite migration here"
TABLES = ("campaign", "recipient")
NOW = "EXTRACT(EPOCH FROM now())::float8"  # the server's clock, fixed for a transaction
NO_LOG = "no send log here: nothing has been sent for this campaign yet"

Conn = AsyncConnection[Any]


async def _tables(conn: Conn) -> set[str]:
    cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {name for (name,) in await cur.fetchall()}


async def read_version(conn: Conn, location: str, new: bool) -> int:
    """The schema version of the database; refuse one that is no send log we can use.

    ``new`` allows a database without our tables (version 0): only a log being created is one.
    """
    tables = await _tables(conn)
    if "schema_version" not in tables:
        ours = sorted(set(TABLES) & tables)
        if ours:
            # Never treat it as new: starting over would send everyone the message again.
            raise SendLogError(
                f"{location}: not a usable send log: a database with a {' and a '.join(ours)} "
                "table but no schema_version table; point send_log at a database of its own"
            )
        if not new:
            raise SendLogError(f"{location}: {NO_LOG}")
        return 0
    row = await (await conn.execute("SELECT version FROM schema_version")).fetchone()
    stored = 0 if row is None else int(row[0])
    if stored > SCHEMA_VERSION:
        raise SendLogError(
            f"{location}: the send log was written by a newer harkat-mail (schema version "
            f"{stored}; this one knows up to {SCHEMA_VERSION}); upgrade harkat-mail to use it"
        )
    missing = [t for t in TABLES if t not in tables]
    if stored == 0 or missing:
        what = f"without the {' and '.join(missing)} table" if missing else "without a version"
        raise SendLogError(
            f"{location}: not a usable send log: a schema_version table {what}; restore the "
            "send log from a backup"
        )
    return stored


async def prepare(conn: Conn, location: str, read_only: bool) -> None:
    """Check the schema; for writing, create or migrate it (read-only never changes it)."""
    found = await read_version(conn, location, new=not read_only)
    if found == SCHEMA_VERSION:
        return
    if read_only:
        raise SendLogError(
            f"{location}: the send log is at schema version {found} (this harkat-mail uses "
            f"{SCHEMA_VERSION}); open it once for sending to upgrade it"
        )
    for migration in (m for m in MIGRATIONS if m.version > found):
        async with conn.transaction():
            # Two senders opening a new database at once: the second waits here, then finds
            # the step done. DDL is transactional, so a step is all there or not at all.
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEMA_LOCK)
            if await read_version(conn, location, new=True) >= migration.version:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            if migration.version == 1:  # the stand-in for PRAGMA user_version comes first
                await conn.execute(
                    "CREATE TABLE schema_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE"
                    " CHECK (one), version INTEGER NOT NULL)"
                )
            await conn.execute(
                "INSERT INTO schema_version (version) VALUES (%s)"
                " ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                (migration.version,),
            )
