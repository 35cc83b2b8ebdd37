"""The PostgreSQL test fixtures: a real throwaway server, a database per test, stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from ..pgserver import PgServer


def test_a_row_written_is_read_back(postgres_db: str) -> None:
    """A table created in the test's database keeps a row that is read back as written."""
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE sent (key text PRIMARY KEY, state text NOT NULL)")
        conn.execute("INSERT INTO sent VALUES (%s, %s)", ("m@example.org", "sent ✓"))
        conn.commit()
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT key, state FROM sent").fetchall() == [
            ("m@example.org", "sent ✓")
        ]


@pytest.fixture
def other_db(pg_server: PgServer) -> Iterator[str]:
    """A second per-test database, made the way postgres_db makes one."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


def test_each_database_is_separate(postgres_db: str, other_db: str, postgres_url: str) -> None:
    """Per-test databases are distinct (a table in one is not in the other); postgres_url is harkat's."""
    assert postgres_db != other_db
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_here (n int)")
    with psycopg.connect(other_db) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            "harkat",
            "harkat",
        )


def test_stopped_server_refuses_then_serves_again(postgres_db: str, pg_server: PgServer) -> None:
    """A stop breaks live connections and refuses new ones; after start, the URL and commits are back."""
    live = psycopg.connect(postgres_db, autocommit=True)
    live.execute("CREATE TABLE kept (n int)")
    live.execute("INSERT INTO kept VALUES (1)")
    pg_server.stop()
    with pytest.raises(psycopg.OperationalError):
        live.execute("SELECT 1")
    live.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_db, connect_timeout=5)
    pg_server.start()
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
