"""A file at the send-log path that is no send log is refused, never started over."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harkat_mail.errors import SendLogError
from harkat_mail.models import Contact
from harkat_mail.store import SendLog
from harkat_mail.store.schema import SCHEMA_VERSION

from .conftest import VERSION_1_SQL, assert_one_line_error, cli, read_rows, send, user_version


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _text_file(path: Path) -> None:
    path.write_text("email,state\nnadia@example.org,sent\n", encoding="utf-8")


def _empty_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # what a crash just after creation used to leave
    db.close()


def _other_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE contacts (email TEXT)")
    db.close()


def _half_created_log(path: Path) -> None:
    with sqlite3.connect(path) as db:  # the campaign table made, the recipient table not yet
        db.execute(VERSION_1_SQL.split(";")[0])
    db.close()


FILES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "empty file": (_empty_file, "an empty file (0 bytes)", "delete it if nothing was ever sent"),
    "text file": (_text_file, "not a send log (not a SQLite database)", "set send_log"),
    "empty SQLite": (
        _empty_database,
        "an empty SQLite database without the campaign and recipient tables",
        "delete it if nothing",
    ),
    "other SQLite": (
        _other_database,
        "a SQLite database without the campaign and recipient tables",
        "set send_log",
    ),
    "half-created log": (
        _half_created_log,
        "a SQLite database without the recipient table",
        "delete it if nothing",
    ),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_file_without_the_schema_is_refused_by_every_command(
    project: Path, log_path: Path, smtp_server, kind: str
) -> None:
    """send, status and report refuse it with one line; nobody is mailed; the file is untouched."""
    make, what, todo = FILES[kind]
    server, handler = smtp_server()
    log_path.parent.mkdir(parents=True)
    make(log_path)
    before = log_path.read_bytes()
    line = assert_one_line_error(send(project, server.port), str(log_path), what, todo)
    assert "restore" in line and "backup" in line
    for command in ("status", "report"):
        assert_one_line_error(cli(command, str(project)), str(log_path), what)
    assert handler.connections == 0 and handler.messages == []
    assert log_path.read_bytes() == before


def test_crash_before_the_log_is_in_place_leaves_no_file(
    project: Path, log_path: Path, smtp_server
) -> None:
    """A process killed while creating the log leaves nothing at its path; the next send works."""
    code = (
        "import os, sys; from pathlib import Path\n"
        "os.link = lambda *a, **k: os._exit(3)  # die with the schema built, not yet linked\n"
        "from harkat_mail.store import SendLog\n"
        "SendLog(Path(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sys.modules["harkat_mail"].__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", code, str(log_path)], env=env, timeout=60)
    assert done.returncode == 3
    assert not log_path.exists()
    leftovers = [p.name for p in log_path.parent.iterdir()]
    assert leftovers and all(name.startswith(f".{log_path.name}.") for name in leftovers)
    server, handler = smtp_server()
    result = send(project, server.port)
    assert result.exit_code == 0, result.output
    assert handler.messages and user_version(log_path) == SCHEMA_VERSION


def test_log_created_by_another_process_meanwhile_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another process puts a log in place while ours is built, ours is dropped, theirs kept."""
    path = tmp_path / "outbox" / "log.sqlite"
    link = os.link
    raced: list[bool] = []

    def other_process_first(src: str | Path, dst: str | Path) -> None:
        if not raced:
            raced.append(True)
            with SendLog(path) as theirs:  # it links its own complete log first
                theirs.plan(
                    "c",
                    [Contact(key="k", email="k@example.org", row=1, source="m.csv", language="en")],
                    [],
                    {"k": "<k>"},
                )
        link(src, dst)

    monkeypatch.setattr(os, "link", other_process_first)
    with SendLog(path) as ours:
        assert ours.counts("c") == {"pending": 1}
    assert raced == [True]
    assert read_rows(path, "SELECT key, state FROM recipient") == [("k", "pending")]
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.sqlite"]


def test_new_log_never_overwrites_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Creating a log leaves exactly the log file in its folder, in WAL mode, at the current version."""
    path = tmp_path / "new" / "log.sqlite"
    SendLog(path).close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.sqlite"]
    assert read_rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert user_version(path) == SCHEMA_VERSION


def test_refusal_names_the_file_in_the_error(tmp_path: Path) -> None:
    """SendLog itself raises SendLogError starting with the file's path for a 0-byte file."""
    path = tmp_path / "log.sqlite"
    path.touch()
    with pytest.raises(SendLogError) as raised:
        SendLog(path)
    assert str(raised.value).startswith(f"{path}: not a usable send log: an empty file")
    assert path.stat().st_size == 0
