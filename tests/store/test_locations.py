"""Where a send log may live: a file or a postgresql:// URL; nothing else starts a new log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.models import send_log_kind


@pytest.mark.parametrize(
    "location",
    [
        "postgresql+psycopg://harkat@127.0.0.1/harkat",
        "mysql://harkat@127.0.0.1/harkat",
        "host=127.0.0.1 port=5432 dbname=harkat",
        "dbname=harkat",
        "Postgresql:/harkat@127.0.0.1/harkat",
    ],
)
def test_other_addresses_are_refused_and_create_nothing(
    project: Path, smtp_server, location: str
) -> None:
    """--send-log and send_log: anything but a file or a postgresql URL: one line, no log, no mail."""
    server, handler = smtp_server()
    before = sorted(p.name for p in project.parent.parent.rglob("*"))
    result = CliRunner().invoke(
        main,
        ["send", str(project), "--yes", "--smtp", f"smtp://127.0.0.1:{server.port}",
         "--send-log", location],
    )
    assert result.exit_code == 2 and "send log:" in result.output, result.output
    assert sorted(p.name for p in project.parent.parent.rglob("*")) == before
    assert handler.messages == []
    text = re.sub(r"(?m)^send_log:.*\n", "", project.read_text(encoding="utf-8"))
    project.write_text(text + f"send_log: {location}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(project)])
    assert result.exit_code == 2 and "send_log:" in result.output


def test_scheme_case_does_not_matter(project: Path, smtp_server, postgres_db: str) -> None:
    """POSTGRESQL://... is the same database as postgresql://...: the send lands there."""
    import psycopg

    server, handler = smtp_server()
    shouted = postgres_db.replace("postgresql://", "POSTGRESQL://")
    result = CliRunner().invoke(
        main,
        ["send", str(project), "--yes", "--smtp", f"smtp://127.0.0.1:{server.port}",
         "--send-log", shouted],
    )
    assert result.exit_code == 0, result.output
    with psycopg.connect(postgres_db) as db:
        sent = db.execute("SELECT COUNT(*) FROM recipient WHERE state = 'sent'").fetchone()
    assert sent is not None and sent[0] == len(handler.messages) > 0
    assert send_log_kind("Postgres://harkat@db.example.org/harkat") == "postgresql"


def test_status_on_a_shared_store_that_never_saw_the_campaign_exits_2(
    project: Path, postgres_db: str
) -> None:
    """A send log holding other campaigns only: status says nothing was sent, exit 2."""
    import asyncio

    from harkat_mail.store import open_store

    async def create() -> None:
        store = await open_store(postgres_db)  # the schema, and no row of this campaign
        await store.close()

    asyncio.run(create())
    result = CliRunner().invoke(main, ["status", str(project), "--send-log", postgres_db])
    assert result.exit_code == 2 and "nothing has been sent" in result.output, result.output
