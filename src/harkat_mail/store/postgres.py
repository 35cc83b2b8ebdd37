"""The PostgreSQL send log: one database shared by senders on any number of machines.

``open_store("postgresql://user@host:5432/db?sslmode=verify-full")``. The URL reaches libpq
untouched (``sslmode``, ``sslrootcert``, ``host=/run/postgresql``, service names all work as
libpq documents them); credentials only through libpq's own means (``PGPASSWORD``,
``PGSERVICEFILE``, ``~/.pgpass``): a URL with a password is refused (see pgconn.py).

Behaviour follows the SQLite store (sqlite.py), with these differences, each for a reason:

- Time: leases, due deferrals and the relay budget use the database server's clock, so
  senders whose clocks disagree still agree on whose lease expired. ``next_attempt_at`` is
  still the sender's ``retry_at``: a skew of seconds only moves a retry by as much.
- Claims lock the due rows they take with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers
  never wait for each other and never take the same row; the claiming run's own row is read
  ``FOR SHARE``, so a take-over of that run waits for the claim to commit and then releases
  what it claimed.
- Every transaction locks ``run`` rows before ``recipient`` rows (the order claims use); a
  deadlock that happens anyway (with a stale run's ``apply``) is retried, as a deadlocked
  transaction changed nothing.
- Every psycopg error becomes one SendLogError line naming the URL; a server that goes away
  fails the call in flight at once, and the next ones within about ``POOL_TIMEOUT`` seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg import errors as pgerr
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import ClaimLost, SendLogError
from ..models import Contact, Grant, Limits, Rejected, State, reason_label
from . import pgclaims, pgplan
from .pgbounces import PgBounces
from .pgconn import POOL_TIMEOUT, connection_kwargs, describe, open_pool
from .pgschema import NOW
from .protocol import LOST, REPORT_COLUMNS, SUPPRESSED, Change, Claim, RunInfo, RunRow

P = ParamSpec("P")
R = TypeVar("R")
Conn = AsyncConnection[Any]

POOL_SIZE = 4  # a run's claims, batched writes, budget and lease renewals overlap a little
RETRIES = 3  # attempts of a transaction that lost a deadlock
PAGE = 5000  # rows() reads this many at a time, holding no connection in between
# The pool logs each failed reconnection as a warning; with no logging set up, Python would
# print them on stderr beside the one-line SendLogError that already says what happened.
# A NullHandler stops that fallback and leaves logging set up by the application alone.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def _guarded(
    method: Callable[Concatenate[PostgresStore, P], Awaitable[R]],
) -> Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, R]]:
    """Every operation reports a database failure as one SendLogError naming the URL."""

    @wraps(method)
    async def wrapper(self: PostgresStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except PoolTimeout:
            raise SendLogError(await self._no_connection()) from None
        except psycopg.Error as exc:
            raise SendLogError(f"{self.location}: {describe(exc)}") from None

    return wrapper


class PostgresStore(PgBounces):
    """A ``Store`` over a small pool of connections to one PostgreSQL database."""

    def __init__(self, pool: AsyncConnectionPool[Conn], url: str, kwargs: dict[str, Any]):
        self.pool = pool
        self.location = url  # connection_kwargs refused any URL with a password
        self._url = url
        self._kwargs = kwargs

    @classmethod
    async def open(cls, url: str, read_only: bool = False) -> PostgresStore:
        """Connect, check the schema and (for writing) create or migrate it."""
        kwargs = connection_kwargs(url)
        return cls(await open_pool(url, kwargs, read_only, POOL_SIZE), url, kwargs)

    async def close(self) -> None:
        """Close every connection of the pool."""
        await self.pool.close(timeout=POOL_TIMEOUT)

    async def _no_connection(self) -> str:
        """Why the pool had no connection to give: a fresh attempt tells libpq's reason."""
        try:
            conn = await AsyncConnection.connect(self._url, **self._kwargs)
        except psycopg.Error as exc:
            return f"{self.location}: {describe(exc)}"
        await conn.close()
        return (
            f"{self.location}: no connection to the database within {POOL_TIMEOUT} s "
            f"(all {POOL_SIZE} busy, or the server was just restarted)"
        )

    async def _transaction(self, body: Callable[[Conn], Awaitable[R]], alone: bool = False) -> R:
        """Run ``body`` in one transaction; again when it lost a deadlock (it changed nothing).

        ``alone``: the body is a single statement, atomic by itself (saves BEGIN and COMMIT).
        """
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    if alone:
                        return await body(conn)
                    async with conn.transaction():
                        return await body(conn)
            except (pgerr.DeadlockDetected, pgerr.SerializationFailure):
                if attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        """Run one statement on its own (autocommit) and return its first row, if any."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone() if cur.description else None

    async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _count(self, sql: str, params: Any = None) -> int:
        """Run one statement on its own and return the number of rows it changed."""
        async with self.pool.connection() as conn:
            return (await conn.execute(sql, params)).rowcount

    @_guarded
    async def check_inputs(self, campaign: str, inputs: Mapping[str, str], force: bool) -> None:
        """Refuse to resume when the YAML, list or template changed, unless forced."""
        text = json.dumps(dict(inputs))
        # ON CONFLICT: two senders starting the same new campaign at once both succeed.
        if await self._count(
            f"INSERT INTO campaign (name, inputs, created_at) VALUES (%s, %s, {NOW})"
            " ON CONFLICT (name) DO NOTHING",
            (campaign, text),
        ):
            return
        row = await self._one("SELECT inputs FROM campaign WHERE name = %s", (campaign,))
        before = json.loads(row[0]) if row else {}
        changed = sorted(k for k in inputs if before.get(k) != inputs[k])
        if not changed:
            return
        if not force:
            raise SendLogError(
                f"{self.location}: campaign {campaign!r} was first sent with a different "
                f"{', '.join(changed)}; resume with --force to send the changed version"
            )
        await self._transaction(lambda conn: pgclaims.force_inputs(conn, campaign, text))

    @_guarded
    async def reopen_failed(self, campaign: str, codes: Sequence[str]) -> int:
        """`failed` rows no run holds, matching ``codes`` if any, become `pending` again."""
        return await self._count(*pgclaims.reopen_failed(campaign, codes))

    @_guarded
    async def next_attempt(self, campaign: str) -> float | None:
        """When the earliest `deferred` row is due."""
        row = await self._one(pgclaims.NEXT_ATTEMPT, (campaign,))
        return None if row is None or row[0] is None else float(row[0])

    @_guarded
    async def plan(
        self,
        campaign: str,
        contacts: Sequence[Contact],
        rejected: Sequence[Rejected],
        message_ids: Mapping[str, str],
    ) -> None:
        """Insert a `pending` row per new contact, a `skipped` row per rejected row (idempotent)."""
        await self._transaction(
            lambda conn: pgplan.plan(conn, campaign, contacts, rejected, message_ids)
        )
        if len(contacts) >= pgplan.ANALYZE_FROM:
            await self._count("ANALYZE recipient")  # see pgplan.ANALYZE_FROM

    @_guarded
    async def start_run(self, run: RunInfo) -> None:
        """Register a run and its lease (on the server's clock)."""
        await self._count(
            "INSERT INTO run (id, campaign, host, pid, started_at, lease_until)"
            f" VALUES (%s, %s, %s, %s, {NOW}, {NOW} + %s)",
            (run.id, run.campaign, run.host, run.pid, run.lease),
        )

    @_guarded
    async def renew(self, run_id: str, lease: float) -> bool:
        """Extend the lease; False when the run was taken over (its rows are no longer its)."""
        changed = await self._count(
            f"UPDATE run SET lease_until = {NOW} + %s WHERE id = %s AND taken_over = 0"
            " AND finished_at IS NULL",
            (lease, run_id),
        )
        return changed == 1

    @_guarded
    async def finish_run(self, run_id: str) -> None:
        """Release every row still held but `sending`, and mark the run finished."""

        async def body(conn: Conn) -> None:
            # The run row first: every transaction locks run rows before recipient rows.
            await conn.execute(f"UPDATE run SET finished_at = {NOW} WHERE id = %s", (run_id,))
            await conn.execute(
                "UPDATE recipient SET run_id = NULL WHERE run_id = %s AND state <> 'sending'",
                (run_id,),
            )

        await self._transaction(body)

    @_guarded
    async def expire(self, run_ids: Sequence[str]) -> None:
        """End these runs' leases now (their processes are known to be gone): the next claim
        takes their rows over."""
        await self._count(
            "UPDATE run SET lease_until = 0 WHERE id = ANY(%s::text[]) AND finished_at IS NULL",
            (list(run_ids),),
        )

    @_guarded
    async def recover(self, campaign: str) -> int:
        """Take over expired runs: their `sending` rows become `unknown`, the rest due again."""
        return await self._transaction(lambda conn: pgclaims.take_over(conn, campaign))

    @_guarded
    async def claim(
        self, campaign: str, run_id: str, limit: int, retry_unknown: bool
    ) -> list[Claim]:
        """Up to ``limit`` due rows nobody holds, in list order, now held by ``run_id``."""
        rows = await self._transaction(
            lambda conn: pgclaims.claim(conn, campaign, run_id, limit, retry_unknown)
        )
        if rows is None:  # the take-over (of this run too) is committed: then refuse
            raise ClaimLost(f"{self.location}: {LOST}")
        return [Claim(key, n, throttled, first) for _, key, n, throttled, first in rows]

    @_guarded
    async def release(self, campaign: str, run_id: str, keys: Sequence[str]) -> None:
        """Give rows back unsent (e.g. members this run's list no longer has)."""
        await self._count(
            "UPDATE recipient SET run_id = NULL WHERE campaign = %s AND run_id = %s"
            " AND key = ANY(%s::text[]) AND state <> 'sending'",
            (campaign, run_id, list(keys)),
        )

    @_guarded
    async def skip_suppressed(self, campaign: str, run_id: str | None) -> list[str]:
        """Unsent rows whose address the store now suppresses become `skipped`; their keys.

        ``run_id`` None: the rows no run holds; else the rows that run holds.
        """
        held = "run_id IS NULL" if run_id is None else "run_id = %(run)s"
        rows = await self._all(
            "UPDATE recipient SET state = 'skipped', reason = %(why)s, run_id = NULL,"
            f" updated_at = {NOW} WHERE campaign = %(campaign)s AND {held}"
            " AND state IN ('pending', 'deferred', 'unknown')"
            " AND key IN (SELECT address FROM suppression) RETURNING key",
            {"why": SUPPRESSED, "campaign": campaign, "run": run_id},
        )
        return [key for (key,) in rows]

    @_guarded
    async def count_due(self, campaign: str, retry_unknown: bool) -> int:
        """Due rows that no run holds."""
        row = await self._one(
            f"SELECT COUNT(*) FROM recipient WHERE campaign = %(campaign)s AND {pgclaims.DUE}",
            {"campaign": campaign, "retry": retry_unknown},
        )
        return int(row[0]) if row else 0

    @_guarded
    async def apply(self, campaign: str, run_id: str, changes: Sequence[Change]) -> list[str]:
        """Several changes in one transaction, each only if ``run_id`` holds the row.

        ``sending`` adds an attempt; a verdict releases the row, but a deferral that this run
        will retry stays held. Returns the keys refused (the claim was lost), in order.
        """
        groups = pgclaims.distinct_runs(changes)
        return await self._transaction(
            lambda conn: pgclaims.apply(conn, campaign, run_id, groups), alone=len(groups) == 1
        )

    @_guarded
    async def take(self, relay: str, want: int, limits: Limits) -> Grant:
        """Take from the relay's shared budget (see ``budget.steps``), one sender at a time."""
        if limits.rate is None and limits.per_hour is None and limits.per_day is None:
            return Grant(want)  # nothing to count or to wait for
        return await self._transaction(lambda conn: pgclaims.take(conn, relay, want, limits))

    @_guarded
    async def runs(self, campaign: str) -> list[RunRow]:
        """Unfinished runs of the campaign with the rows each holds."""
        rows = await self._all(
            "SELECT r.id, r.host, r.pid, r.started_at, r.lease_until,"
            f" (SELECT COUNT(*) FROM recipient WHERE run_id = r.id), r.lease_until < {NOW}"
            " FROM run r WHERE r.campaign = %s AND r.finished_at IS NULL AND r.taken_over = 0"
            " ORDER BY r.started_at, r.id",
            (campaign,),
        )
        return [
            RunRow(id_, host, pid, started, lease, held, expired)
            for id_, host, pid, started, lease, held, expired in rows
        ]

    @_guarded
    async def suppressions(self) -> set[str]:
        """Addresses suppressed in this store."""
        return {address for (address,) in await self._all("SELECT address FROM suppression")}

    @_guarded
    async def add_suppression(self, address: str, why: str, list_id: str) -> bool:
        """Record ``address`` as suppressed; False when it already was."""
        added = await self._count(
            "INSERT INTO suppression (address, why, list_id, created_at)"
            f" VALUES (%s, %s, %s, {NOW}) ON CONFLICT (address) DO NOTHING",
            (address.strip().lower(), why, list_id),
        )
        return added == 1

    @_guarded
    async def last_errors(
        self, campaign: str, limit: int = 5
    ) -> list[tuple[str, str, int | None, str]]:
        """The latest failed, deferred or unknown recipients: (email, state, code, reply)."""
        rows = await self._all(
            "SELECT email, state, code, reply FROM recipient WHERE campaign = %s"
            " AND state IN ('failed', 'deferred', 'unknown') ORDER BY updated_at DESC, seq DESC"
            " LIMIT %s",
            (campaign, limit),
        )
        return [(email, state, code, reply) for email, state, code, reply in rows]

    @_guarded
    async def counts(self, campaign: str) -> dict[str, int]:
        """Rows per state for a campaign."""
        rows = await self._all(
            "SELECT state, COUNT(*) FROM recipient WHERE campaign = %s GROUP BY state",
            (campaign,),
        )
        return {state: int(count) for state, count in rows}

    @_guarded
    async def skipped_reasons(self, campaign: str) -> dict[str, int]:
        """Skipped rows per reason (reasons grouped by their first words)."""
        out: dict[str, int] = {}
        rows = await self._all(
            "SELECT reason, COUNT(*) FROM recipient WHERE campaign = %s AND state = %s"
            " GROUP BY reason",
            (campaign, State.SKIPPED),
        )
        for reason, count in rows:
            label = reason_label(reason)
            out[label] = out.get(label, 0) + int(count)
        return out

    @_guarded
    async def _page(
        self, campaign: str, after: tuple[str, int, str] | None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        # Byte order (COLLATE "C"), as SQLite sorts; `key` breaks ties so pages never overlap.
        order = 'source COLLATE "C", row, key COLLATE "C"'
        where = "" if after is None else f" AND ({order}) > (%s, %s, %s)"
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {REPORT_COLUMNS} FROM recipient WHERE campaign = %s{where}"
                f" ORDER BY {order} LIMIT {PAGE}",
                (campaign, *(after or ())),
            )
            names = [d.name for d in cur.description or ()]
            return names, await cur.fetchall()

    async def rows(self, campaign: str) -> AsyncIterator[dict[str, Any]]:
        """Every recipient row of a campaign, as plain dicts, in input order (page by page)."""
        after: tuple[str, int, str] | None = None
        while True:
            names, page = await self._page(campaign, after)
            for values in page:
                row = dict(zip(names, values, strict=True))
                yield row
            if len(page) < PAGE:
                return
            after = (row["source"], row["row"], row["key"])
