"""Planning a campaign into the PostgreSQL send log: 100,000 members in a second or two.

Rows go in with COPY into temporary tables, then one INSERT ... SELECT ... ON CONFLICT for
the members and one for the rejected rows: idempotent like SQLite's INSERT OR IGNORE, without
a statement (or a round trip) per member. The members keep their list order in ``seq``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection

from ..models import Contact, Rejected
from .pgschema import NOW

# A plan this big refreshes the planner's statistics at once (ANALYZE, a fraction of a
# second): until autovacuum gets round to it, the planner would guess the new rows' shape
# and might scan the whole list for every claim instead of using the partial indexes.
ANALYZE_FROM = 1000


async def plan(
    conn: AsyncConnection[Any],
    campaign: str,
    contacts: Sequence[Contact],
    rejected: Sequence[Rejected],
    message_ids: Mapping[str, str],
) -> None:
    """Insert the new members as `pending` and the rejected rows as `skipped`; in a transaction."""
    # A long list may take longer than the session's statement_timeout (see pgconn.py).
    await conn.execute("SET LOCAL statement_timeout = '10min'")
    if contacts:
        await conn.execute(
            "CREATE TEMP TABLE plan_member (ord BIGINT, key TEXT, email TEXT, member_id TEXT,"
            " language TEXT, source TEXT, row INTEGER, message_id TEXT, consent TEXT)"
            " ON COMMIT DROP"
        )
        async with conn.cursor() as cur, cur.copy("COPY plan_member FROM STDIN") as copy:
            for ord_, c in enumerate(contacts):
                await copy.write_row(
                    (ord_, c.key, c.email, c.member_id, c.language, c.source, c.row,
                     message_ids[c.key], c.consent)
                )  # fmt: skip
        # ORDER BY ord: PostgreSQL evaluates nextval (seq's default) after the sort.
        await conn.execute(
            "INSERT INTO recipient (campaign, key, email, member_id, language, source, row,"
            " state, message_id, consent, created_at, updated_at)"
            " SELECT %s, key, email, member_id, language, source, row, 'pending', message_id,"
            f" consent, {NOW}, {NOW} FROM plan_member ORDER BY ord"
            " ON CONFLICT (campaign, key) DO NOTHING",
            (campaign,),
        )
    if rejected:
        await conn.execute(
            "CREATE TEMP TABLE plan_skip (ord BIGINT, email TEXT, source TEXT, row INTEGER,"
            " reason TEXT) ON COMMIT DROP"
        )
        async with conn.cursor() as cur, cur.copy("COPY plan_skip FROM STDIN") as copy:
            for ord_, r in enumerate(rejected):
                await copy.write_row((ord_, r.email, r.source, r.row, r.reason))
        # A rejected row keeps its key (source and row) and takes the latest reason. DISTINCT
        # ON keeps the last of repeats, as SQLite's one-by-one upserts would; DO UPDATE
        # cannot touch one row twice in a statement.
        await conn.execute(
            "INSERT INTO recipient (campaign, key, email, source, row, state, reason,"
            " created_at, updated_at)"
            " SELECT DISTINCT ON (key) %s, key, email, source, row, 'skipped', reason,"
            f" {NOW}, {NOW} FROM (SELECT 'skip:' || source || ':' || row AS key, * FROM"
            " plan_skip) AS s ORDER BY key, ord DESC"
            " ON CONFLICT (campaign, key) DO UPDATE SET reason = excluded.reason,"
            " email = excluded.email, updated_at = excluded.updated_at"
            " WHERE recipient.state = 'skipped'",
            (campaign,),
        )
