"""The PostgreSQL send log, part three: bounces, complaints and soft-bounce scores.

Each read-then-write runs in one transaction holding the row's lock (``FOR UPDATE``), so two
machines processing bounces at once still apply each verdict once, gravest last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from ..errors import SendLogError
from ..models import State
from .bouncerules import DIAGNOSTIC_CHARS, next_score, replaces
from .pgconn import describe
from .pgschema import NOW

P = ParamSpec("P")
R = TypeVar("R")
Conn = AsyncConnection[Any]


def _guarded(
    method: Callable[Concatenate[PgBounces, P], Awaitable[R]],
) -> Callable[Concatenate[PgBounces, P], Coroutine[Any, Any, R]]:
    """A database failure becomes one SendLogError naming the URL."""

    @wraps(method)
    async def wrapper(self: PgBounces, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except PoolTimeout:
            raise SendLogError(f"{self.location}: no connection to the database") from None
        except psycopg.Error as exc:
            raise SendLogError(f"{self.location}: {describe(exc)}") from None

    return wrapper


class PgBounces:
    """What ``PostgresStore`` does with bounces (it supplies the pool helpers)."""

    location: str
    _transaction: Callable[..., Awaitable[Any]]
    _all: Callable[..., Awaitable[list[tuple[Any, ...]]]]

    @_guarded
    async def mark_bounced(
        self, campaign: str, key: str, bounce_class: str, status: str, diagnostic: str
    ) -> bool:
        """Record a bounce (or ``complaint``) on a member's row; False when nothing changed."""
        state = State.COMPLAINED if bounce_class == "complaint" else State.BOUNCED

        async def body(conn: Conn) -> bool:
            cur = await conn.execute(
                "SELECT state, bounce_class FROM recipient WHERE campaign = %s AND key = %s"
                " FOR UPDATE",
                (campaign, key),
            )
            row = await cur.fetchone()
            if row is None or not replaces(row[0], row[1], bounce_class):
                return False
            await conn.execute(
                "UPDATE recipient SET state = %s, bounce_class = %s, bounce_status = %s,"
                f" bounce_diagnostic = %s, updated_at = {NOW} WHERE campaign = %s AND key = %s",
                (state, bounce_class, status, diagnostic[:DIAGNOSTIC_CHARS], campaign, key),
            )
            return True

        return bool(await self._transaction(body))

    @_guarded
    async def soft_bounce(self, address: str, day: int) -> int:
        """Count a soft bounce for ``address`` on ``day`` (days since 1970); its new score."""
        address = address.strip().lower()

        async def body(conn: Conn) -> int:
            # Insert first (no-op if there), so that the row exists to be locked.
            await conn.execute(
                "INSERT INTO soft_bounce (address, score, last_day, updated_at)"
                f" VALUES (%s, 0, -1000000, {NOW}) ON CONFLICT (address) DO NOTHING",
                (address,),
            )
            cur = await conn.execute(
                "SELECT score, last_day FROM soft_bounce WHERE address = %s FOR UPDATE",
                (address,),
            )
            row = await cur.fetchone()
            assert row is not None
            score = next_score(None if row[0] == 0 else (int(row[0]), int(row[1])), day)
            await conn.execute(
                "UPDATE soft_bounce SET score = %s, last_day = GREATEST(last_day, %s),"
                f" updated_at = {NOW} WHERE address = %s",
                (score, day, address),
            )
            return score

        return int(await self._transaction(body))

    @_guarded
    async def bounce_seen(self, bounce_id: str) -> bool:
        """Whether the bounce message with this id was processed already."""
        return bool(await self._all("SELECT 1 FROM bounce_seen WHERE id = %s", (bounce_id,)))

    @_guarded
    async def remember_bounces(self, bounce_ids: Sequence[str], campaign: str) -> None:
        """Note bounce messages as processed: reading them again changes nothing."""
        for bounce_id in bounce_ids:
            await self._all(
                "INSERT INTO bounce_seen (id, campaign, created_at)"
                f" VALUES (%s, %s, {NOW}) ON CONFLICT (id) DO NOTHING RETURNING id",
                (bounce_id, campaign),
            )

    @_guarded
    async def bounce_counts(self, campaign: str) -> dict[str, int]:
        """Bounced and complained rows per class (``hard``, ``soft``, ``block``, ``complaint``)."""
        rows = await self._all(
            "SELECT bounce_class, COUNT(*) FROM recipient WHERE campaign = %s"
            " AND state IN (%s, %s) GROUP BY bounce_class",
            (campaign, State.BOUNCED, State.COMPLAINED),
        )
        return {cls: int(count) for cls, count in rows}
