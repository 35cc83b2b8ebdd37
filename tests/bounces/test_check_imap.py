"""`bounces check` over IMAP against Dovecot: read-only, nothing seen, moved or deleted."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

from ..dovecotserver import DovecotServer
from . import dsn
from .imaphelp import append, flags

pytestmark = [pytest.mark.slow, pytest.mark.external]
BOUNCES = "bounces@cupw.example.org"
GONE = "ana@example.org"


def _check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["bounces", "check", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("scheme", ["imaps", "imap"])
def test_imap_folder_is_classified_and_left_unseen(dovecot: DovecotServer, scheme: str) -> None:
    """A DSN and an auto-reply give one JSON line each (source URL:UID); both stay in INBOX unseen."""
    append(dovecot, dsn.dsn(BOUNCES, GONE, "5.1.1", "550 5.1.1 User unknown"), dsn.auto_reply(BOUNCES))
    before = flags(dovecot, "INBOX")
    url = dovecot.url(scheme)
    code, out, err = _check(
        url, "--format", "json", "--password-env", "HARKAT_TEST_IMAP_PASSWORD",
        "--ca-file", str(dovecot.ca_file),
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == [f"{url}:1", f"{url}:2"]
    assert lines[0]["kind"] == "bounce"
    assert [(r["address"], r["status"], r["class"], r["action"]) for r in lines[0]["recipients"]] == [
        (GONE, "5.1.1", "hard", "suppress")
    ]
    assert lines[1] == {"source": f"{url}:2", "kind": "auto-reply", "recipients": []}
    after = flags(dovecot, "INBOX")
    assert len(after) == 2 and after == before
    assert not any("\\Seen" in f or "\\Deleted" in f for f in after.values()), after


def test_imap_text_output_names_url_and_uid(dovecot: DovecotServer) -> None:
    """Without --format the same folder gives one text line per message, as for files."""
    append(dovecot, dsn.dsn(BOUNCES, GONE, "5.1.1", "550 5.1.1 User unknown"))
    url = dovecot.url("imaps")
    code, out, err = _check(
        url, "--password-env", "HARKAT_TEST_IMAP_PASSWORD", "--ca-file", str(dovecot.ca_file)
    )
    assert code == 0, err
    assert out.startswith(f"{url}:1: bounce: {GONE} hard -> suppress 5.1.1")
    assert len(out.splitlines()) == 1


def test_imap_without_password_env_is_one_line_exit_2(dovecot: DovecotServer) -> None:
    """No --password-env: one line naming the option, exit 2, before any login."""
    code, out, err = _check(dovecot.url("imaps"), "--ca-file", str(dovecot.ca_file))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--password-env" in err


def test_imap_url_with_password_is_refused_without_echoing_it() -> None:
    """A password in the URL: one line, exit 2, and the password is not printed."""
    code, out, err = _check("imaps://bounces:hunter2@127.0.0.1/INBOX", "--password-env", "X")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "never put the password in the URL" in err
    assert "hunter2" not in err


def test_untrusted_imap_certificate_is_one_line_exit_2(dovecot: DovecotServer) -> None:
    """Without --ca-file the self-signed certificate fails to verify: one line naming --ca-file."""
    code, _, err = _check(dovecot.url("imaps"), "--password-env", "HARKAT_TEST_IMAP_PASSWORD")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--ca-file" in err
