"""A pool of relays through the CLI: shares by weight, a relay down, the relay of each member."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from harkat_mail.cli import main

from .store.conftest import send_log_of


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def pool(project: Path, *relays: tuple[int, float]) -> None:
    """``smtp:`` as a list of loopback relays, ``(port, weight)`` each."""
    items = "".join(
        f"  - host: 127.0.0.1\n    port: {port}\n    tls: none\n    weight: {weight}\n"
        for port, weight in relays
    )
    text = project.read_text(encoding="utf-8")
    assert "smtp: local\n" in text
    project.write_text(text.replace("smtp: local\n", "smtp:\n" + items), encoding="utf-8")


def received(handler: object) -> list[str]:
    return [m.rcpt_tos[0].lower() for m in handler.messages]  # type: ignore[attr-defined]


def report_rows(project: Path) -> list[dict[str, str]]:
    result = cli("report", str(project), "--format", "csv")
    assert result.exit_code == 0, result.output
    return [r for r in csv.DictReader(result.stdout.splitlines()) if r["state"] != "skipped"]


def test_two_relays_share_the_members_by_weight(project: Path, smtp_server) -> None:
    """Weights 3 and 1: the first relay gets three quarters of the members, nobody twice."""
    (a, got_a), (b, got_b) = smtp_server(), smtp_server()
    pool(project, (a.port, 3), (b.port, 1))
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 0, result.output
    assert "through a pool of 127.0.0.1:" in result.output
    first, second = received(got_a), received(got_b)
    total = len(first) + len(second)
    assert total == len(report_rows(project)) > 100
    assert abs(len(first) - total * 3 / 4) <= 1 and abs(len(second) - total / 4) <= 1
    assert not set(first) & set(second)
    by_relay = {r["email"].lower(): r["relay"] for r in report_rows(project)}
    assert {by_relay[e] for e in first} == {f"127.0.0.1:{a.port}"}
    assert {by_relay[e] for e in second} == {f"127.0.0.1:{b.port}"}


def test_a_relay_down_gives_its_share_to_the_other(
    project: Path, smtp_server, unused_port: int
) -> None:
    """One relay refuses connections: the other delivers everyone once; one line says so."""
    server, handler = smtp_server()
    pool(project, (unused_port, 1), (server.port, 1))
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 0, result.output
    notices = [line for line in result.output.splitlines() if "out of the pool" in line]
    assert len(notices) == 1, result.output
    assert notices[0].startswith(f"relay 127.0.0.1:{unused_port} is out of the pool (")
    assert notices[0].endswith(f"its share goes to 127.0.0.1:{server.port}")
    rows = report_rows(project)
    assert sorted(received(handler)) == sorted(r["email"].lower() for r in rows)
    assert {(r["state"], r["relay"]) for r in rows} == {("sent", f"127.0.0.1:{server.port}")}
    db = sqlite3.connect(send_log_of(project))
    relays = db.execute("SELECT DISTINCT relay FROM recipient WHERE state = 'sent'").fetchall()
    db.close()
    assert relays == [(f"127.0.0.1:{server.port}",)]


def test_every_relay_down_is_relay_unavailable(project: Path, unused_port: int) -> None:
    """Both relays refuse connections: exit 3 naming both; nobody is marked sent or failed."""
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        second = other.getsockname()[1]
    pool(project, (unused_port, 1), (second, 2))
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 3, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("harkat-mail: every relay of the pool is unavailable (")
    assert f"127.0.0.1:{unused_port}" in last and f"127.0.0.1:{second}" in last
    assert {r["state"] for r in report_rows(project)} <= {"pending", "deferred"}


def test_json_report_names_the_relay(project: Path, smtp_server) -> None:
    """report --format json carries the relay of each member as well."""
    import json

    (a, _), (b, _) = smtp_server(), smtp_server()
    pool(project, (a.port, 1), (b.port, 1))
    assert cli("send", str(project), "--yes").exit_code == 0
    result = cli("report", str(project), "--format", "json")
    relays = {r["relay"] for r in json.loads(result.stdout) if r["state"] == "sent"}
    assert relays == {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}


def test_a_relay_refusing_the_login_gives_its_share_to_the_other(
    project: Path, smtp_server, monkeypatch
) -> None:
    """A relay answering AUTH with 535 leaves the pool; the other delivers everyone."""
    from aiosmtpd.smtp import AuthResult

    def refuse(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False)

    (strict, refused), (open_, handler) = (
        smtp_server(smtp={"authenticator": refuse, "auth_require_tls": False}),
        smtp_server(),
    )
    monkeypatch.setenv("RELAY_PASSWORD", "not-this-one")
    pool(project, (strict.port, 1), (open_.port, 1))
    text = project.read_text(encoding="utf-8").replace(
        f"port: {strict.port}\n", f"port: {strict.port}\n    username: u\n"
        "    password_env: RELAY_PASSWORD\n"
    )
    project.write_text(text, encoding="utf-8")
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 0, result.output
    assert f"relay 127.0.0.1:{strict.port} is out of the pool (" in result.output
    assert refused.messages == []
    assert sorted(received(handler)) == sorted(r["email"].lower() for r in report_rows(project))


def test_each_relay_keeps_its_own_daily_cap(project: Path, smtp_server) -> None:
    """A relay capped at 5 a day takes 5; the rest of its share goes to the other relay."""
    (capped, got_capped), (other, got_other) = smtp_server(), smtp_server()
    pool(project, (capped.port, 1), (other.port, 1))
    text = project.read_text(encoding="utf-8").replace(
        f"port: {capped.port}\n", f"port: {capped.port}\n    per_day: 5\n"
    )
    project.write_text(text, encoding="utf-8")
    result = cli("send", str(project), "--yes")
    assert result.exit_code == 0, result.output
    assert len(got_capped.messages) == 5
    assert f"relay 127.0.0.1:{capped.port} is out of the pool (" in result.output
    everyone = received(got_capped) + received(got_other)
    assert sorted(everyone) == sorted(r["email"].lower() for r in report_rows(project))
