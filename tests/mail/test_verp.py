"""VERP return paths: the envelope sender a relay sees, and tokens that cannot be forged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.mail.verp import Verp

from ..campaign.helpers import edit, refused

SECRET = b"test-unsubscribe-secret-0123456789"
VERP_RE = re.compile(r"^bounces\+([a-z2-7]{32})@cupw\.example\.org$")


def _send(project: Path, port: int) -> None:
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes"]
    )
    assert result.exit_code == 0, result.output


def _with_bounces(project: Path, verp: bool) -> Path:
    flag = "true" if verp else "false"
    return edit(
        project,
        "smtp: local\n",
        f"smtp: local\nbounces:\n  address: bounces@cupw.example.org\n  verp: {flag}\n",
    )


def test_verp_envelope_sender_names_each_member_and_keeps_from(project: Path, smtp_server) -> None:
    """With verp each delivery's MAIL FROM is bounces+TOKEN@domain, distinct per member, From kept."""
    server, handler = smtp_server()
    _send(_with_bounces(project, True), server.port)
    assert len(handler.messages) > 3
    verp = Verp("bounces@cupw.example.org", SECRET)
    campaign = load_campaign(project)
    tokens = set()
    for delivered in handler.messages:
        match = VERP_RE.match(delivered.mail_from)
        assert match, delivered.mail_from
        tokens.add(match.group(1))
        rcpt = delivered.rcpt_tos[0].lower()
        assert rcpt.split("@")[0] not in delivered.mail_from  # the address is not in clear
        found = verp.verify(match.group(1))
        assert found is not None
        assert found.member == verp.member_tag(campaign.name, rcpt)
        assert found.campaign == verp.campaign_tag(campaign.name)
        msg = delivered.message
        assert msg["From"].addresses[0].addr_spec == "national@cupw.example.org"
        assert msg["Return-Path"] is None
    assert len(tokens) == len(handler.messages)


def test_without_verp_envelope_sender_is_the_bounce_address(project: Path, smtp_server) -> None:
    """bounces.address without verp is every delivery's MAIL FROM."""
    server, handler = smtp_server()
    _send(_with_bounces(project, False), server.port)
    assert handler.messages
    assert {m.mail_from for m in handler.messages} == {"bounces@cupw.example.org"}


def test_without_bounces_envelope_sender_is_from(project: Path, smtp_server) -> None:
    """Without a bounces key the From address stays the envelope sender."""
    server, handler = smtp_server()
    _send(project, server.port)
    assert {m.mail_from for m in handler.messages} == {"national@cupw.example.org"}


def test_altered_or_foreign_tokens_are_ignored() -> None:
    """A token altered in one character, cut short, or made with another key names nobody."""
    verp = Verp("bounces@cupw.example.org", SECRET)
    token = verp.token("sept2018", "ana@example.org")
    assert verp.verify(token) is not None
    assert verp.verify(token.upper()) is not None  # a relay that upper-cases local parts
    for i in range(len(token)):
        altered = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1 :]
        assert verp.verify(altered) is None
    assert verp.verify(token[:-1]) is None
    other = Verp("bounces@cupw.example.org", b"another-secret-of-sufficient-length")
    assert other.verify(token) is None
    address = verp.address("sept2018", "ana@example.org")
    assert len(address.split("@")[0]) <= 40
    assert verp.find(["someone@example.org", address.upper()]) == verp.verify(token)
    assert verp.find([address.replace("cupw", "evil")]) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{verp: true}", "missing key 'address'"),
        ("{address: b+x@cupw.example.org, verp: true}", "must have no '+'"),
        ("{address: b@cupw.example.org, verp: yes please}", "expected true or false"),
        ("{address: b@cupw.example.org, mailbox: 'imaps://u:pw@h/INBOX'}", "never put the password"),
        ("{address: b@cupw.example.org, mailbox: 'pop3://u@h'}", "imaps:// or imap://"),
        ("{address: b@cupw.example.org, mailbox: 'imaps://u@h:99999/INBOX'}", "not a valid URL"),
        ("{address: b@cupw.example.org, mailbox: 'imaps://u@[::1/INBOX'}", "not a valid URL"),
        ("{address: b@cupw.example.org, block_alert: '250%'}", "percentage"),
        ("{address: b@cupw.example.org, soft_threshold: 0}", "whole number"),
        ("{address: b@cupw.example.org, processed: ../elsewhere}", "expected a folder name"),
    ],
)
def test_bad_bounces_config_is_refused_naming_the_key(project: Path, value: str, message: str) -> None:
    """Each bad bounces value is one error naming the file, the line and the bounces key."""
    edit(project, "smtp: local\n", f"smtp: local\nbounces: {value}\n")
    error = refused(project)
    assert "bounces" in error and message in error and "sept2018.yaml" in error


def test_reference_builder_uses_the_same_envelope_sender(project: Path) -> None:
    """build_message (the reference) and the fast builder give each member the same VERP sender."""
    from harkat_mail.mail import VariantMessages
    from harkat_mail.mail.message import build_message
    from harkat_mail.models import Contact, RenderedContent

    campaign = load_campaign(_with_bounces(project, True))
    contact = Contact(key="ana@example.org", email="Ana@example.org", row=1, source="x", language="en")
    content = RenderedContent("s", "<p>h</p>", "t")
    fast = VariantMessages(campaign, "en").build(contact, content, "")
    slow = build_message(campaign, contact, "en", content, "")
    assert fast.sender == slow.sender
    assert VERP_RE.match(fast.sender)


def test_relative_mailbox_path_is_resolved_against_the_yaml(project: Path) -> None:
    """bounces.mailbox as a relative path names a place beside the campaign file."""
    edit(project, "smtp: local\n", "smtp: local\nbounces: {address: b@cupw.example.org, mailbox: ../Maildir}\n")
    bounces = load_campaign(project).bounces
    assert bounces is not None and bounces.mailbox == str(project.parent.parent / "Maildir")
