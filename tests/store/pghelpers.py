"""Helpers for the PostgreSQL store's tests: members, a planned store, plain-SQL read-back."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import psycopg

from harkat_mail.models import Contact, DeliveryResult, Outcome
from harkat_mail.store.postgres import PostgresStore

T = TypeVar("T")
SQLITE_COLUMNS = [
    "campaign", "key", "email", "member_id", "language", "source", "row", "state", "reason",
    "attempts", "code", "reply", "message_id", "consent", "next_attempt_at", "created_at",
    "updated_at", "relay", "bounce_class", "bounce_status", "bounce_diagnostic",
]  # fmt: skip


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def contacts(n: int, source: str = "m.csv") -> list[Contact]:
    # Keys that do not sort in list order, so list order is told apart from key order.
    return [
        Contact(key=f"{(i * 7919) % 10007:05d}-m{i}@{source}", email=f"m{i}@example.org",
                row=i + 1, source=source, language="en")
        for i in range(n)
    ]  # fmt: skip


async def planned(url: str, n: int, campaign: str = "c") -> tuple[PostgresStore, list[str]]:
    """A store with ``n`` pending members planned; their keys in list order."""
    store = await PostgresStore.open(url)
    members = contacts(n)
    await store.plan(campaign, members, [], {c.key: f"<{c.key}>" for c in members})
    return store, [c.key for c in members]


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read back with a plain psycopg connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def sent(key: str, code: int = 250) -> tuple[DeliveryResult, None]:
    return (DeliveryResult(key, Outcome.SENT, code, "ok"), None)


async def planned_and_closed(url: str, n: int) -> list[str]:
    """Plan ``n`` members (creating the send log) and close the store; their keys."""
    store, keys = await planned(url, n)
    await store.close()
    return keys
