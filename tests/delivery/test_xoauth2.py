"""``auth: xoauth2`` (Microsoft 365, Google Workspace) end to end against an XOAUTH2 relay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.delivery import password_for
from harkat_mail.errors import ConfigError
from harkat_mail.models import SmtpConfig

TOKEN = "ya29.a0-test-access-token-Zx81"  # made up
USER = "appeals@cupw.example.org"


def _campaign(project: Path, port: int, auth: str) -> Path:
    smtp = (
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  tls: none\n  connections: 2\n"
        f"  username: {USER}\n{auth}"
    )
    text = project.read_text(encoding="utf-8").replace("smtp: local", smtp)
    project.write_text(text, encoding="utf-8")
    return project


def _send(campaign: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["send", str(campaign), "--yes"])
    return result.exit_code, result.output


def _token_script(tmp_path: Path, token: str, status: int = 0) -> Path:
    """A token command: prints ``token``, writes a secret to stderr, counts its runs."""
    script = tmp_path / "token.py"
    script.write_text(
        "import sys\n"
        f"open({str(tmp_path / 'runs')!r}, 'a').write('run\\n')\n"
        "sys.stderr.write('refresh_token=STDERR-SECRET-42\\n')\n"
        f"print({token!r})\n"
        f"sys.exit({status})\n",
        encoding="utf-8",
    )
    return script


def test_token_from_the_environment_authenticates_every_session(
    project: Path, modern_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token in token_env is accepted by the relay and every member is delivered."""
    server, handler = modern_server(token=TOKEN)
    monkeypatch.setenv("M365_TOKEN", TOKEN)
    code, out = _send(_campaign(project, server.port, "  auth: xoauth2\n  token_env: M365_TOKEN\n"))
    assert code == 0, out
    assert handler.messages and set(handler.tokens_seen) == {TOKEN}
    assert len(handler.tokens_seen) == handler.connections
    assert TOKEN not in out


def test_token_command_runs_once_per_session_and_its_stderr_stays_hidden(
    project: Path, modern_server, tmp_path: Path
) -> None:
    """token_command's printed token is used, once per SMTP session; its stderr is never shown."""
    server, handler = modern_server(token=TOKEN)
    script = _token_script(tmp_path, TOKEN)
    auth = f"  auth: xoauth2\n  token_command: [{sys.executable}, {script}]\n"
    code, out = _send(_campaign(project, server.port, auth))
    assert code == 0, out
    assert handler.messages and set(handler.tokens_seen) == {TOKEN}
    runs = (tmp_path / "runs").read_text().count("run")
    assert runs == handler.connections == len(handler.tokens_seen)
    assert "STDERR-SECRET" not in out and TOKEN not in out


def test_refused_token_stops_the_run_with_exit_3_and_never_shows_it(
    project: Path, modern_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay answering 535 to the token: exit 3, one line naming the relay, token unsaid."""
    server, handler = modern_server(token="the-right-token")
    monkeypatch.setenv("M365_TOKEN", TOKEN)
    code, out = _send(_campaign(project, server.port, "  auth: xoauth2\n  token_env: M365_TOKEN\n"))
    assert code == 3, out
    assert f"127.0.0.1:{server.port}" in out and "535" in out and "XOAUTH2" in out
    assert TOKEN not in out
    assert handler.messages == [] and handler.rcpt_calls == {}


def test_failing_token_command_is_a_configuration_error_without_its_stderr(
    project: Path, modern_server, tmp_path: Path
) -> None:
    """A token command that exits 1: exit 2 naming smtp.token_command; its stderr unshown."""
    server, handler = modern_server(token=TOKEN)
    script = _token_script(tmp_path, TOKEN, status=1)
    auth = f"  auth: xoauth2\n  token_command: [{sys.executable}, {script}]\n"
    code, out = _send(_campaign(project, server.port, auth))
    assert code == 2, out
    assert "smtp.token_command" in out and "status 1" in out
    assert "STDERR-SECRET" not in out and TOKEN not in out
    assert handler.messages == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("  auth: xoauth2\n", "exactly one of token_env or token_command"),
        ("  auth: xoauth2\n  token_env: A\n  token_command: [b]\n", "exactly one of"),
        ("  auth: xoauth2\n  token_env: A\n  password_env: P\n", "smtp.password_env"),
        ("  auth: oauth\n", "smtp.auth"),
        ("  token_env: A\n", "only used with auth: xoauth2"),
        ("  auth: xoauth2\n  token_command: []\n", "smtp.token_command"),
        ("  auth: xoauth2\n  token_env: UNSET_TOKEN_VARIABLE\n", "UNSET_TOKEN_VARIABLE is unset"),
    ],
)
def test_bad_xoauth2_settings_are_one_line_errors(
    project: Path, modern_server, auth: str, expected: str
) -> None:
    """Each mistake in the xoauth2 keys is exit 2 with one error line naming it; nothing sent."""
    server, handler = modern_server(token=TOKEN)
    code, out = _send(_campaign(project, server.port, auth))
    assert code == 2, out
    errors = [line for line in out.splitlines() if line.startswith("harkat-mail:")]
    assert len(errors) == 1 and expected in errors[0]
    assert handler.messages == [] and handler.connections == 0


def test_a_token_is_never_sent_in_clear_text_beyond_loopback(monkeypatch) -> None:
    """auth: xoauth2 with tls: none to a remote relay is refused before any connection."""
    monkeypatch.setenv("M365_TOKEN", TOKEN)
    config = SmtpConfig(
        local=False, host="smtp.office365.com", port=25, tls="none", username=USER,
        auth="xoauth2", token_env="M365_TOKEN",
    )
    with pytest.raises(ConfigError, match="clear text to smtp.office365.com"):
        password_for(config)
