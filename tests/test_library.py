"""The library keeps the rules a command keeps: callers that skip the CLI are held to them too."""

from __future__ import annotations

from pathlib import Path

import pytest

import harkat_mail
from harkat_mail.models import SmtpConfig


def _relay(port: int) -> SmtpConfig:
    return SmtpConfig(local=False, host="127.0.0.1", port=port, tls="none")


def test_send_to_a_real_relay_without_the_secret_is_refused(
    project: Path, smtp_server, monkeypatch
) -> None:
    """harkat_mail.send without the unsubscribe secret: ConfigError naming it, nothing delivered."""
    monkeypatch.delenv("HARKAT_UNSUBSCRIBE_SECRET")
    server, handler = smtp_server()
    prepared = harkat_mail.prepare(harkat_mail.load_campaign(project))
    with pytest.raises(harkat_mail.ConfigError, match="HARKAT_UNSUBSCRIBE_SECRET"):
        harkat_mail.send(prepared, _relay(server.port))
    with harkat_mail.SendLog(prepared.campaign.send_log, read_only=True) as log:
        assert log.counts(prepared.campaign.name).get("sent", 0) == 0
    with pytest.raises(harkat_mail.ConfigError, match="HARKAT_UNSUBSCRIBE_SECRET"):
        harkat_mail.send_tests(prepared, ["staff@example.org"], _relay(server.port))
    assert handler.messages == [] and handler.connections == 0


def test_the_capture_relay_works_without_the_secret(project: Path, monkeypatch) -> None:
    """smtp: local needs no secret: the appeal lands in the outbox Maildir."""
    monkeypatch.delenv("HARKAT_UNSUBSCRIBE_SECRET")
    prepared = harkat_mail.prepare(harkat_mail.load_campaign(project))
    summary = harkat_mail.send(prepared, prepared.campaign.smtp)
    members = len(prepared.contacts.contacts)
    assert summary.delivered == members > 0
    assert len(list((prepared.campaign.outbox / "new").iterdir())) == members
