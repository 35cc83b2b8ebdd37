"""A damaged send log gives one line naming the file, from every command and every operation."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.models import Contact, DeliveryResult, Limits, Outcome
from harkat_mail.store import BatchedLog, SendLog, SqliteStore

from .conftest import assert_one_line_error, cli, send

PAGE = 4096


def _damage(path: Path, start: int, end: int) -> None:
    """Overwrite bytes ``start:end`` of the file in place, as a failing disk might."""
    data = bytearray(path.read_bytes())
    data[start:end] = b"\xa5" * (end - start)
    path.write_bytes(bytes(data))


def _contacts(n: int) -> list[Contact]:
    return [
        Contact(
            key=f"m{i}@example.org", email=f"m{i}@example.org", row=i, source="m.csv", language="en"
        )
        for i in range(n)
    ]


def test_damaged_log_stops_every_command_with_one_line(
    project: Path, log_path: Path, smtp_server
) -> None:
    """After bytes in the middle of a real log are overwritten, send/status/report exit 2."""
    server, handler = smtp_server()
    assert send(project, server.port).exit_code == 0
    delivered = len(handler.messages)
    size = log_path.stat().st_size
    assert size >= 8 * PAGE
    _damage(log_path, size // 3, 2 * size // 3)
    for result in (
        cli("status", str(project)),
        cli("report", str(project)),
        send(project, server.port),
    ):
        assert_one_line_error(
            result, str(log_path), "the send log is damaged", "restore it from a backup"
        )
    assert len(handler.messages) == delivered


OPERATIONS: dict[str, Callable[[SendLog], Any]] = {
    "check_inputs": lambda log: log.check_inputs("c", {"YAML": "x"}, force=False),
    "recover": lambda log: log.recover("c"),
    "plan": lambda log: log.plan("c", _contacts(3), [], {c.key: "" for c in _contacts(3)}),
    "count_due": lambda log: log.count_due("c", retry_unknown=False),
    "claim": lambda log: log.claim("c", "r", 10, retry_unknown=False),
    "apply": lambda log: log.apply("c", "r", ["m1@example.org"]),
    "take": lambda log: log.take("relay", 1, Limits(10.0, None, 5)),
    "runs": lambda log: log.runs("c"),
    "last_errors": lambda log: log.last_errors("c"),
    "counts": lambda log: log.counts("c"),
    "skipped_reasons": lambda log: log.skipped_reasons("c"),
    "rows": lambda log: list(log.rows("c")),
}


@pytest.fixture
def damaged_while_open(tmp_path: Path) -> Any:
    """A log opened intact, then damaged underneath it (every page but the first)."""
    path = tmp_path / "log.sqlite"
    with SendLog(path) as log:
        log.check_inputs("c", {"YAML": "x"}, force=False)
        log.plan("c", _contacts(300), [], {c.key: f"<{c.key}>" for c in _contacts(300)})
    log = SendLog(path)
    # Another connection commits, so the open log drops its cached pages and rereads the file.
    # Only page 1 changes, and it stays in the -wal: every page of the file proper is read anew.
    other = sqlite3.connect(path)
    other.execute("PRAGMA user_version = 2")
    _damage(path, PAGE, path.stat().st_size)
    yield path, log
    other.close()
    with contextlib.suppress(SendLogError):
        log.close()


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_operation_on_a_damaged_log_raises_send_log_error(
    damaged_while_open: tuple[Path, SendLog], operation: str
) -> None:
    """Each SendLog operation reports the damage as SendLogError naming the file, not sqlite3."""
    path, log = damaged_while_open
    with pytest.raises(SendLogError) as raised:
        OPERATIONS[operation](log)
    assert str(raised.value).startswith(f"{path}: the send log is damaged")
    assert "\n" not in str(raised.value)


def test_batched_log_reports_damage_from_sending_and_close(tmp_path: Path) -> None:
    """BatchedLog.sending and close raise SendLogError naming the file; nothing is lost silently."""
    path = tmp_path / "log.sqlite"
    with SendLog(path) as log:
        log.check_inputs("c", {"YAML": "x"}, force=False)
        log.plan("c", _contacts(300), [], {c.key: f"<{c.key}>" for c in _contacts(300)})
    errors: list[BaseException] = []

    async def run() -> None:
        store = SqliteStore(path)  # opened intact; damaged underneath, as in the fixture
        other = sqlite3.connect(path)
        other.execute("PRAGMA user_version = 2")
        _damage(path, PAGE, path.stat().st_size)
        batched = BatchedLog(store, "c", "r")
        try:
            await batched.sending("m1@example.org")
        except BaseException as exc:
            errors.append(exc)
        batched.record(DeliveryResult("m2@example.org", Outcome.SENT, 250, "ok"), None)
        try:
            await batched.close()
        except BaseException as exc:
            errors.append(exc)
        other.close()
        with contextlib.suppress(SendLogError):
            await store.close()

    asyncio.run(run())
    assert [type(e) for e in errors] == [SendLogError, SendLogError]
    assert all(str(e).startswith(f"{path}: the send log is damaged") for e in errors)


@pytest.mark.parametrize("read_only", [False, True])
def test_opening_a_damaged_log_is_refused(tmp_path: Path, read_only: bool) -> None:
    """Opening checks every page, so damage outside any query's reach is still reported."""
    path = tmp_path / "log.sqlite"
    with SendLog(path) as log:
        log.plan("c", _contacts(300), [], {c.key: "" for c in _contacts(300)})
    size = path.stat().st_size
    _damage(path, size - PAGE, size - PAGE + 64)  # only the last page
    with pytest.raises(SendLogError, match="the send log is damaged"):
        SendLog(path, read_only=read_only)
