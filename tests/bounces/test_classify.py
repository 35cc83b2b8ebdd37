"""The classifier against real MTA bounces, complaints and auto-replies, plus targeted cases."""

from __future__ import annotations

import pytest

from harkat_mail.bounces import Verdict, classify, to_json

from .corpus import ROOT, manifest

MANIFEST = manifest()
ACTIONS = {"hard": "suppress", "complaint": "suppress", "soft": "count", "block": "none"}


def test_corpus_is_large_and_covers_every_kind() -> None:
    """The corpus holds 100+ messages from many MTAs, and every kind and class appears."""
    assert len(MANIFEST) >= 100
    assert {e.kind for e in MANIFEST.values()} == {"bounce", "complaint", "auto-reply", "other"}
    classes = {c for e in MANIFEST.values() for c in e.classes.values()}
    assert classes == {"hard", "soft", "block", "complaint"}
    assert len({name.split("/")[0] for name in MANIFEST}) >= 12
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.eml")}
    assert on_disk == set(MANIFEST), "every corpus file has a manifest row and vice versa"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_message(name: str) -> None:
    """Each corpus message gets the kind, recipients and classes a person read in it."""
    expected = MANIFEST[name]
    verdict = classify((ROOT / name).read_bytes())
    got = {r.address: r.bounce_class for r in verdict.recipients}
    assert (verdict.kind, got) == (expected.kind, expected.classes), expected.reading
    for r in verdict.recipients:
        assert r.action == ACTIONS[r.bounce_class]


def dsn(diagnostic: str, status: str, action: str = "failed", address: str = "ana@example.org") -> bytes:
    """A Postfix-style RFC 3464 report for one recipient."""
    return f"""\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: bounces+k3y@cupw.example.org
Delivered-To: bounces+k3y@cupw.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The mail system could not deliver your message.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B
Content-Type: text/rfc822-headers

From: Union <news@cupw.example.org>
To: {address}
Message-ID: <c1.m42@cupw.example.org>

--B--
""".encode()


@pytest.mark.parametrize(
    ("diagnostic", "status", "action", "expected"),
    [
        ("550 5.1.1 <ana@example.org>: Recipient address rejected: User unknown", "5.1.1", "failed", "hard"),
        ("550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org", "5.7.1", "failed", "block"),
        ("550 5.1.1 Message rejected: sender IP listed on a blocklist", "5.1.1", "failed", "block"),
        ("552 5.2.2 <ana@example.org>: mailbox over quota", "5.2.2", "failed", "soft"),
        ("550 5.2.1 The email account that you tried to reach is disabled", "5.2.1", "failed", "hard"),
        ("550 5.1.2 Host unknown: no such domain", "5.1.2", "failed", "hard"),
        ("550-5.7.26 This mail is unauthenticated: DMARC policy of the sender domain", "5.7.26", "failed", "block"),
        ("421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints", "4.7.0", "failed", "block"),
        ("451 4.3.0 Temporary lookup failure", "4.3.0", "delayed", "soft"),
        ("Message expired in queue", "4.4.7", "failed", "soft"),
        ("450 4.1.1 <ana@example.org>: Recipient address rejected: User unknown", "4.1.1", "failed", "soft"),
        ("554 5.7.1 Message rejected because of its content", "5.7.1", "failed", "block"),
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "5.1.10", "failed", "hard"),
    ],
)
def test_dsn_reason_decides_the_class(diagnostic: str, status: str, action: str, expected: str) -> None:
    """Status code and server words decide hard/soft/block: a 5.x.x block stays a block."""
    verdict = classify(dsn(diagnostic, status, action))
    assert verdict.kind == "bounce"
    (only,) = verdict.recipients
    assert (only.address, only.status, only.bounce_class) == ("ana@example.org", status, expected)
    assert only.action == ACTIONS[expected] and only.diagnostic == diagnostic


def test_success_notification_is_not_a_bounce() -> None:
    """A DSN whose only recipient was delivered or relayed suppresses and counts nobody."""
    for action in ("delivered", "relayed"):
        verdict = classify(dsn("250 2.0.0 Ok: queued", "2.0.0", action))
        assert (verdict.kind, verdict.recipients) == ("other", ())


def test_delayed_dsn_is_counted_not_suppressed() -> None:
    """Action: delayed is a soft bounce, counted, whatever its code."""
    (only,) = classify(dsn("550 5.1.1 user unknown", "4.4.1", "delayed")).recipients
    assert (only.bounce_class, only.action) == ("soft", "count")


def test_verdict_points_back_to_the_sent_message() -> None:
    """The returned Message-ID and the address the report came to (the VERP token) are exposed."""
    verdict = classify(dsn("550 5.1.1 user unknown", "5.1.1"))
    assert verdict.message_ids == ("<c1.m42@cupw.example.org>",)
    assert verdict.envelope_to == ("bounces+k3y@cupw.example.org",)


def test_to_json_is_the_check_format() -> None:
    """to_json gives exactly the documented object for `bounces check --format json`."""
    assert to_json("box:3", classify(dsn("552 5.2.2 full", "5.2.2"))) == {
        "source": "box:3",
        "kind": "bounce",
        "recipients": [
            {"address": "ana@example.org", "status": "5.2.2", "class": "soft", "action": "count", "diagnostic": "552 5.2.2 full"}
        ],
    }


ARF = """\
From: feedbackloop@fbl.example.net
To: abuse@cupw.example.org
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: {type}
User-Agent: SomeFBL/1.0
Version: 1
{rcpt}
--F
Content-Type: message/rfc822

From: Union <news@cupw.example.org>
To: Bea <bea@example.com>
Message-ID: <c1.m7@cupw.example.org>
Subject: News

Hello
--F--
"""


def test_arf_complaint_names_the_original_recipient() -> None:
    """An ARF abuse report is a complaint against Original-Rcpt-To, suppressed at once."""
    verdict = classify(ARF.format(type="abuse", rcpt="Original-Rcpt-To: <zoe@example.com>\n").encode())
    assert verdict.kind == "complaint"
    assert [(r.address, r.bounce_class, r.action) for r in verdict.recipients] == [
        ("zoe@example.com", "complaint", "suppress")
    ]
    assert verdict.message_ids == ("<c1.m7@cupw.example.org>",)


def test_arf_without_rcpt_to_uses_the_returned_to() -> None:
    """Without Original-Rcpt-To, the complained-of message's To names the member."""
    verdict = classify(ARF.format(type="abuse", rcpt="").encode())
    assert [(r.address, r.bounce_class) for r in verdict.recipients] == [("bea@example.com", "complaint")]


def test_auth_failure_report_is_not_a_complaint() -> None:
    """An RFC 6591 authentication-failure report suppresses nobody."""
    verdict = classify(ARF.format(type="auth-failure", rcpt="").encode())
    assert (verdict.kind, verdict.recipients) == ("other", ())


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied\nSubject: Re: News",
        "X-Autoreply: yes\nSubject: Re: News",
        "Precedence: auto_reply\nSubject: Re: News",
        "Subject: Réponse automatique : News",
        "Subject: =?utf-8?q?R=C3=A9ponse_automatique_=3A_News?=",
        "Subject: Out of Office: News",
        "Subject: Abwesenheitsnotiz: News",
    ],
)
def test_auto_replies_suppress_nobody(headers: str) -> None:
    """RFC 3834 auto-replies and out-of-office replies (EN/FR/DE) are auto-reply, no recipients."""
    raw = f"From: Bea <bea@example.com>\nTo: news@cupw.example.org\n{headers}\n\nI am away until Monday.\n"
    verdict = classify(raw.encode())
    assert (verdict.kind, verdict.recipients) == ("auto-reply", ())


def test_ordinary_reply_is_other() -> None:
    """A member's ordinary reply is neither a bounce nor an auto-reply."""
    raw = b"From: Bea <bea@example.com>\nTo: news@cupw.example.org\nSubject: Re: News\n\nThanks, see you Tuesday.\n"
    assert classify(raw) == Verdict("other", (), (), ("news@cupw.example.org",))


def test_unnamed_recipient_keeps_its_class() -> None:
    """A bounce that names no address still has a class, with address "" (attribute by token)."""
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: bounces+k3y@cupw.example.org\n"
        b"Subject: Mail delivery failed\n\nOne or more of the recipients are not a valid user of the system.\n"
    )
    verdict = classify(raw)
    assert [(r.address, r.bounce_class) for r in verdict.recipients] == [("", "hard")]
    assert verdict.envelope_to == ("bounces+k3y@cupw.example.org",)
