"""Relay operations from the CLI: validate --check-relay, send --retry-failed, forced resumes."""

from __future__ import annotations

import csv
import sqlite3
import ssl
import time
from pathlib import Path

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner, Result

from harkat_mail.cli import main

from .store.conftest import send_log_of

PASSWORD = "relay-password-for-tests"
# Members of the sample list who are sent the appeal (active, with a consent basis).
ALICE, BOB, CAROL = "amina.belanger8", "nadia.bergeron38", "karim.levesque88"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def set_smtp(project: Path, block: str) -> None:
    """Replace the sample's ``smtp: local`` with ``block``."""
    text = project.read_text(encoding="utf-8")
    assert "smtp: local\n" in text
    project.write_text(text.replace("smtp: local\n", block), encoding="utf-8")


def relay(port: int) -> str:
    return f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  tls: none\n"


def report(project: Path) -> list[dict[str, str]]:
    result = cli("report", str(project), "--format", "csv")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(result.stdout.splitlines()))


def received(handler: object) -> list[str]:
    return [m.rcpt_tos[0].lower() for m in handler.messages]  # type: ignore[attr-defined]


# -- validate --check-relay -------------------------------------------------------------------


def test_check_relay_lists_what_a_tls_relay_with_auth_offers(
    project: Path, smtp_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session with STARTTLS and AUTH: TLS version, extensions and mechanisms are shown."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    logins: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == PASSWORD.encode(), handled=False)

    options = {
        "tls_context": context,
        "require_starttls": True,
        "authenticator": authenticator,
        "enable_SMTPUTF8": True,
    }
    server, handler = smtp_server(smtp=options)
    monkeypatch.setenv("RELAY_PASSWORD", PASSWORD)
    set_smtp(
        project,
        f"smtp:\n  host: 127.0.0.1\n  port: {server.port}\n  tls: starttls\n"
        f"  username: sender\n  password_env: RELAY_PASSWORD\n  ca_file: {ca_file}\n",
    )
    result = cli("validate", str(project), "--check-relay")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"relay sender@127.0.0.1:{server.port} (tls: starttls): test.local" in out
    assert "TLS: TLSv1." in out
    extensions = next(line for line in out.splitlines() if "extensions:" in line)
    for name in ("SIZE 33.6 MB", "8BITMIME", "SMTPUTF8"):
        assert name in extensions
    assert "AUTH: LOGIN, PLAIN; logged in" in out
    assert logins == [b"sender"] and handler.messages == []
    assert "to send" in out  # the usual validation still ran


def test_check_relay_against_nothing_listening_exits_3_with_one_line(
    project: Path, unused_port: int
) -> None:
    """Nothing on the port: exit 3 and one line naming the relay and the cause."""
    set_smtp(project, relay(unused_port))
    result = cli("validate", str(project), "--check-relay")
    assert result.exit_code == 3, result.output
    assert result.output.splitlines() == [
        f"harkat-mail: cannot connect to 127.0.0.1:{unused_port}: connection refused; "
        "is the relay running?"
    ]


def test_check_relay_with_a_refused_login_exits_3_naming_the_reply(
    project: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 535 to AUTH is one line with the relay's reply, exit 3."""

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False)

    server, _ = smtp_server(smtp={"authenticator": authenticator, "auth_require_tls": False})
    monkeypatch.setenv("RELAY_PASSWORD", "wrong")
    set_smtp(project, relay(server.port) + "  username: sender\n  password_env: RELAY_PASSWORD\n")
    result = cli("validate", str(project), "--check-relay")
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{server.port} refused the login: 535" in lines[0]
    assert "wrong" not in result.output


# -- send --retry-failed ----------------------------------------------------------------------


def test_retry_failed_resends_exactly_the_failed_members(project: Path, smtp_server) -> None:
    """Failed members are resent when asked (by reply code first); sent members never again."""
    rules = {
        ALICE: ("rcpt", "550 5.4.1 recipient address rejected: access denied"),  # not hard
        BOB: ("rcpt", "554 5.7.1 refused by policy"),
        CAROL: ("rcpt", "552 5.2.2 over quota"),
    }
    server, handler = smtp_server(**rules)
    set_smtp(project, relay(server.port))
    first = cli("send", str(project), "--yes")
    assert first.exit_code == 1, first.output
    delivered = received(handler)
    assert not any(name in a for a in delivered for name in rules)
    handler.rules.clear()  # the relay accepts them now

    again = cli("send", str(project), "--yes")  # without the flag: nothing is resent
    assert again.exit_code == 1 and len(handler.messages) == len(delivered)
    assert "3 failed (resend them with --retry-failed)" in again.output

    by_code = cli("send", str(project), "--yes", "--retry-code", "550")
    assert by_code.exit_code == 0, by_code.output
    assert "1 failed members with reply code 550 are due again" in by_code.output
    assert [a for a in received(handler)[len(delivered) :]] == [f"{ALICE}@example.com"]

    rest = cli("send", str(project), "--yes", "--retry-failed")
    assert rest.exit_code == 0, rest.output
    resent = sorted(received(handler)[len(delivered) + 1 :])
    assert resent == [f"{CAROL}@example.com", f"{BOB}@example.net"]
    everyone = received(handler)
    assert len(everyone) == len(set(everyone))  # nobody twice
    assert {r["state"] for r in report(project) if r["state"] != "skipped"} == {"sent"}


def test_retry_code_must_look_like_a_reply_code(project: Path) -> None:
    """--retry-code 5.1.1 is refused as bad input (exit 2) naming the value."""
    result = cli("send", str(project), "--retry-code", "5.1.1")
    assert result.exit_code == 2 and "'5.1.1': expected a reply code" in result.output


# -- forced resume after a changed YAML -------------------------------------------------------


def _defer(project: Path, names: tuple[str, ...], seconds: float) -> None:
    """Put members back as the relay left them after a 4xx: deferred, next try later."""
    db = sqlite3.connect(send_log_of(project))
    with db:
        for name in names:
            changed = db.execute(
                "UPDATE recipient SET state = 'deferred', code = 451, next_attempt_at = ?"
                " WHERE email LIKE ?",
                (time.time() + seconds, f"{name}@%"),
            ).rowcount
            assert changed == 1
    db.close()


def test_force_after_a_changed_yaml_sends_the_deferred_members(
    project: Path, smtp_server
) -> None:
    """Deferred for an hour: a rerun says so and exits 1; after a YAML fix --force sends them."""
    server, handler = smtp_server()
    set_smtp(project, relay(server.port))
    assert cli("send", str(project), "--yes").exit_code == 0
    count = len(handler.messages)
    _defer(project, (ALICE, BOB), 3600)

    waiting = cli("send", str(project), "--yes")
    assert waiting.exit_code == 1 and len(handler.messages) == count
    assert "nothing new to send" in waiting.output
    assert "the send log still has 2 deferred (the next is due " in waiting.output

    project.write_text(project.read_text().replace("three ways", "3 ways"), encoding="utf-8")
    refused = cli("send", str(project), "--yes")
    assert refused.exit_code == 2 and "--force" in refused.output
    forced = cli("send", str(project), "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(received(handler)[count:]) == [f"{ALICE}@example.com", f"{BOB}@example.net"]
    subjects = {m.message["Subject"] for m in handler.messages[count:]}
    assert all("3 ways" in s or "façons" in s for s in subjects)


def test_force_after_an_outage_and_a_fixed_relay_reaches_everyone(
    project: Path, smtp_server, unused_port: int
) -> None:
    """A run against a relay that is down, then the YAML fixed and --force: everyone, once."""
    set_smtp(project, relay(unused_port) + "retry:\n  delays: [3600]\n")
    down = cli("send", str(project), "--yes")
    assert down.exit_code in (1, 3), down.output
    server, handler = smtp_server()
    project.write_text(
        project.read_text().replace(f"port: {unused_port}", f"port: {server.port}"),
        encoding="utf-8",
    )
    forced = cli("send", str(project), "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    rows = [r for r in report(project) if r["state"] != "skipped"]
    assert sorted(received(handler)) == sorted(r["email"].lower() for r in rows)
    assert {r["state"] for r in rows} == {"sent"}
