"""The PostgreSQL send log refuses what it cannot use, in one line, and never hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import psycopg
import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.store import open_store, pgschema
from harkat_mail.store.pgconn import describe, redact
from harkat_mail.store.postgres import PostgresStore
from harkat_mail.store.protocol import Limits, RunInfo

from ..pgserver import PgServer, free_port
from .pghelpers import planned, planned_and_closed, query, run, sent


def test_newer_schema_is_refused(postgres_db: str) -> None:
    """A database at a schema version newer than this harkat-mail knows is refused in one line, read-only too."""
    run(planned_and_closed(postgres_db, 1))
    newer = pgschema.SCHEMA_VERSION + 1
    query(postgres_db, f"UPDATE schema_version SET version = {newer}")
    for read_only in (False, True):
        with pytest.raises(SendLogError) as err:
            run(PostgresStore.open(postgres_db, read_only=read_only))
        known = f"schema version {newer}; this one knows up to {pgschema.SCHEMA_VERSION}"
        assert f"newer harkat-mail ({known})" in str(err.value)
        assert "\n" not in str(err.value)
    assert query(postgres_db, "SELECT version FROM schema_version") == [(newer,)]


@pytest.mark.parametrize(
    ("user", "query_string"),
    [
        ("harkat:s3cret@", ""),
        ("harkat:@", ""),
        ("harkat@", "?password=s3cret"),
        ("harkat@", "?sslmode=disable&password=s3cret"),
        ("harkat@", "?pass%77ord=s3cret"),
    ],
)
def test_password_in_url_is_refused(postgres_db: str, user: str, query_string: str) -> None:
    """A URL with a password (in the user part or as a parameter) is refused without repeating it."""
    url = postgres_db.replace("harkat@", user, 1) + query_string
    with pytest.raises(SendLogError) as err:
        run(open_store(url))
    message = str(err.value)
    assert "never put the password in the URL; use PGPASSWORD or ~/.pgpass" in message
    assert "s3cret" not in message and ":@" not in message and message.count("\n") == 0
    assert message.startswith(postgres_db.split("?")[0])
    assert query(postgres_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []


def test_read_only_open_of_empty_database_is_refused_and_creates_nothing(postgres_db: str) -> None:
    """Opening an empty database read-only says nothing has been sent yet, and leaves it empty."""
    with pytest.raises(SendLogError) as err:
        run(open_store(postgres_db, read_only=True))
    assert str(err.value) == (
        f"{postgres_db}: no send log here: nothing has been sent for this campaign yet"
    )
    assert query(postgres_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []


def test_read_only_store_reads_and_never_writes(postgres_db: str) -> None:
    """A read-only store reports counts and rows but refuses any write in one line."""
    run(planned_and_closed(postgres_db, 3))

    async def go() -> None:
        store = await open_store(postgres_db, read_only=True)
        assert await store.counts("c") == {"pending": 3}
        assert len([row async for row in store.rows("c")]) == 3
        with pytest.raises(SendLogError, match="opened read-only"):
            await store.add_suppression("x@example.org", "unsubscribe", "l")
        await store.close()

    run(go())
    assert query(postgres_db, "SELECT COUNT(*) FROM suppression") == [(0,)]


def test_unreachable_server_is_one_line_quickly(pg_server: PgServer) -> None:
    """A URL where no server listens fails within seconds, naming the URL and the cause."""
    url = f"postgresql://harkat@127.0.0.1:{free_port()}/harkat"
    began = time.monotonic()
    with pytest.raises(SendLogError) as err:
        run(open_store(url))
    assert time.monotonic() - began < 5
    assert str(err.value) == f"{url}: the database is unreachable (connection refused)"


def test_server_stopped_mid_run_fails_fast_then_recovers(
    postgres_db: str, pg_server: PgServer
) -> None:
    """With the server gone, a waiting call and the next ones raise SendLogError within seconds; after a restart the stores work and see what was committed."""

    async def timed(call: Awaitable[object]) -> tuple[float, str]:
        began = time.monotonic()
        with pytest.raises(SendLogError) as err:
            await call
        return time.monotonic() - began, str(err.value)

    async def go() -> None:
        store, keys = await planned(postgres_db, 10)
        await store.start_run(RunInfo("r", "c", "h", 1, 60))
        claimed = [c.key for c in await store.claim("c", "r", 4, False)]
        assert await store.apply("c", "r", claimed[:1]) == []
        # A call waiting in the server (here for the relay budget's lock) when it goes away.
        blocker = await psycopg.AsyncConnection.connect(postgres_db)
        await blocker.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext('relay'))", (pgschema.BUDGET_LOCKS,)
        )
        waiting = asyncio.ensure_future(timed(store.take("relay", 1, Limits(10, None, None))))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(pg_server.stop)
        lost, message = await waiting
        assert lost < 5 and "the connection to the database was lost" in message, message
        assert message.startswith(f"{postgres_db}: ") and "\n" not in message
        await blocker.close()
        later, message = await timed(store.apply("c", "r", [sent(claimed[0])]))
        assert later < 10, later
        assert message == f"{postgres_db}: the database is unreachable (connection refused)"

        await asyncio.to_thread(pg_server.start)
        again = await PostgresStore.open(postgres_db)
        assert await again.counts("c") == {"pending": 9, "sending": 1}
        assert [r.id for r in await again.runs("c")] == ["r"]
        await again.close()
        assert await store.apply("c", "r", [sent(claimed[0])]) == []  # the old pool too
        await store.close()

    run(go())


def test_someone_elses_tables_are_refused_not_migrated(postgres_db: str) -> None:
    """A database holding a `campaign` table that is not ours is refused, for writing too, and left as it was."""
    query(postgres_db, "CREATE TABLE campaign (title text)")
    with pytest.raises(SendLogError) as err:
        run(open_store(postgres_db))
    assert "not a usable send log: a database with a campaign table but no schema_version" in str(
        err.value
    )
    tables = query(postgres_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("campaign",)]


@pytest.mark.parametrize(
    ("message", "meaning"),
    [
        (
            'connection failed: connection to server at "db", port 5432 failed: fe_sendauth: no'
            " password supplied",
            "the database refused the login (fe_sendauth: no password supplied); give the"
            " password with PGPASSWORD or ~/.pgpass",
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: FATAL:  password'
            ' authentication failed for user "harkat"',
            'the database refused the login (password authentication failed for user "harkat");'
            " give the password with PGPASSWORD or ~/.pgpass",
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: timeout expired',
            "the database is unreachable (timeout expired)",
        ),
        (
            "consuming input failed: server closed the connection unexpectedly\n\tThis probably",
            "the connection to the database was lost (server closed the connection unexpectedly)",
        ),
    ],
)
def test_connection_failures_read_as_one_line(message: str, meaning: str) -> None:
    """libpq's connection failures (they carry no SQLSTATE) are told apart and given a hint."""
    assert describe(psycopg.OperationalError(message)) == meaning


def test_redact_drops_every_password() -> None:
    """redact removes a password from the user part and from the parameters, keeping the rest."""
    assert redact("postgresql://u:p%40ss@h:5432/db?sslmode=require") == (
        "postgresql://u@h:5432/db?sslmode=require"
    )
    assert redact("postgres://u@h/db?password=x&sslmode=verify-full") == (
        "postgres://u@h/db?sslmode=verify-full"
    )
    assert redact("postgresql://u@h/db?sslmode=require&password=x") == (
        "postgresql://u@h/db?sslmode=require"
    )
