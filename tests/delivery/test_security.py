"""TLS verified or refused, passwords only from the environment and never written down."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.delivery import password_for
from harkat_mail.errors import ConfigError, DeliveryError
from harkat_mail.models import SmtpConfig

from .test_scheduler import _deliver

SECRET = "correct-horse-battery-staple-7"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the test relays."""
    return trustme.CA()


def _tls_server(smtp_server, ca: trustme.CA):
    """A relay offering STARTTLS with a certificate for 127.0.0.1 issued by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return smtp_server(smtp={"tls_context": context, "require_starttls": True})


def test_starttls_with_the_campaigns_ca_file_delivers(smtp_server, ca, tmp_path: Path) -> None:
    """STARTTLS to a relay whose certificate chains to the configured CA file works."""
    server, handler = _tls_server(smtp_server, ca)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    out = _deliver(server.port, ["a", "b"], tls="starttls", ca_file=ca_file)
    assert len(handler.messages) == 2 and len(out.results) == 2


def test_implicit_tls_delivers(smtp_server, ca, tmp_path: Path) -> None:
    """tls: tls speaks TLS from the first byte (smtps) and verifies the certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server, handler = smtp_server(smtp={"ssl": context})
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    _deliver(server.port, ["a"], tls="tls", ca_file=ca_file)
    assert len(handler.messages) == 1
    with pytest.raises(DeliveryError):
        _deliver(server.port, ["b"], tls="tls")  # same relay, CA not trusted
    assert len(handler.messages) == 1


def test_an_untrusted_certificate_stops_the_run(smtp_server, ca) -> None:
    """Without the CA, the self-issued certificate fails verification: nothing is sent."""
    server, handler = _tls_server(smtp_server, ca)
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        _deliver(server.port, ["a", "b"], tls="starttls")
    assert handler.messages == []


def test_starttls_is_required_when_asked(smtp_server) -> None:
    """tls: starttls against a relay that does not offer it refuses instead of downgrading."""
    server, handler = smtp_server()
    with pytest.raises(DeliveryError, match="STARTTLS"):
        _deliver(server.port, ["a"], tls="starttls")
    assert handler.messages == []


def test_password_rules(monkeypatch) -> None:
    """The password comes from the named variable; clear-text AUTH only to loopback."""
    config = SmtpConfig(
        local=False,
        host="mail.example.org",
        tls="none",
        username="u",
        password_env="HARKAT_TEST_PW",
    )
    monkeypatch.delenv("HARKAT_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="HARKAT_TEST_PW is unset"):
        password_for(config)
    monkeypatch.setenv("HARKAT_TEST_PW", SECRET)
    with pytest.raises(ConfigError, match="clear text to mail.example.org") as info:
        password_for(config)
    assert SECRET not in str(info.value)
    assert (
        password_for(
            SmtpConfig(
                local=False,
                host="127.0.0.1",
                tls="none",
                username="u",
                password_env="HARKAT_TEST_PW",
            )
        )
        == SECRET
    )


def test_auth_password_never_reaches_output_log_or_previews(
    project: Path, smtp_server, monkeypatch, unsubscribe_secret: str
) -> None:
    """A send with AUTH delivers; the password and unsubscribe secret are in no output or file."""
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == SECRET.encode(), handled=False)

    server, handler = smtp_server(smtp={"authenticator": authenticator, "auth_require_tls": False})
    text = project.read_text(encoding="utf-8").replace(
        "smtp: local",
        f"smtp:\n  host: 127.0.0.1\n  port: {server.port}\n  tls: none\n"
        "  username: campaigns@example.org\n  password_env: HARKAT_TEST_PW",
    )
    project.write_text(text, encoding="utf-8")
    monkeypatch.setenv("HARKAT_TEST_PW", SECRET)
    runner = CliRunner()
    outputs = [runner.invoke(main, ["send", str(project), "--dry-run"]).output]
    result = runner.invoke(main, ["send", str(project), "--yes"])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    assert logins and all(p == SECRET.encode() for _, p in logins)
    assert len(handler.messages) > 100
    for command in (["status", str(project)], ["report", str(project), "--format", "json"]):
        outputs.append(runner.invoke(main, command).output)
    root = project.parent.parent
    files = [p for p in root.rglob("*") if p.is_file()]
    for secret in (SECRET, unsubscribe_secret):
        assert all(secret.encode() not in p.read_bytes() for p in files)
        assert all(secret not in o for o in outputs)
        assert all(secret.encode() not in m.data for m in handler.messages)


def test_wrong_password_stops_the_run(project: Path, smtp_server, monkeypatch) -> None:
    """A refused login stops the run at once with exit 3 and one line naming the 535."""

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False)

    server, handler = smtp_server(smtp={"authenticator": authenticator, "auth_require_tls": False})
    project.write_text(
        project.read_text(encoding="utf-8").replace(
            "smtp: local",
            f"smtp:\n  host: 127.0.0.1\n  port: {server.port}\n  tls: none\n"
            "  username: campaigns@example.org\n  password_env: HARKAT_TEST_PW",
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("HARKAT_TEST_PW", "wrong")
    result = CliRunner().invoke(main, ["send", str(project), "--yes"])
    assert result.exit_code == 3
    assert f"cannot connect to 127.0.0.1:{server.port}: authentication refused (535" in result.output
    assert handler.messages == []
