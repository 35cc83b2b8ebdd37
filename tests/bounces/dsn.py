"""Returned mail as MTAs write it: RFC 3464 DSNs, an RFC 5965 complaint, an auto-reply."""

from __future__ import annotations

import uuid


def _id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def dsn(
    to: str,
    recipient: str,
    status: str,
    diagnostic: str,
    original_id: str = "",
    action: str = "failed",
    return_path: str = "",
) -> bytes:
    """A Postfix-style delivery status notification sent back to envelope sender ``to``.

    ``return_path``: the original envelope sender, in the returned headers as receivers add it.
    """
    original = f"Message-ID: {original_id}\n" if original_id else ""
    if return_path:
        original = f"Return-Path: <{return_path}>\n" + original
    text = f"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: {_id("mx.example.net")}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.net said: {diagnostic}

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--b1
Content-Type: text/rfc822-headers

From: CUPW National Office <national@cupw.example.org>
To: {recipient}
{original}Subject: Mohamed Harkat must stay in Canada

--b1--
"""
    return text.replace("\n", "\r\n").encode()


def complaint(to: str, recipient: str, original_id: str = "") -> bytes:
    """An ARF abuse report (a feedback loop) about the message ``recipient`` was sent."""
    original = f"Message-ID: {original_id}\n" if original_id else ""
    text = f"""From: feedbackloop@isp.example.net
To: {to}
Subject: Abuse report
Message-ID: {_id("isp.example.net")}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b2"

--b2
Content-Type: text/plain

This is an email abuse report for an email message received.

--b2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1
Original-Mail-From: {to}
Original-Rcpt-To: {recipient}

--b2
Content-Type: text/rfc822-headers

From: national@cupw.example.org
To: {recipient}
{original}Subject: Mohamed Harkat must stay in Canada

--b2--
"""
    return text.replace("\n", "\r\n").encode()


def auto_reply(to: str) -> bytes:
    """An out-of-office reply (RFC 3834)."""
    return (
        f"From: away@example.net\r\nTo: {to}\r\nSubject: Out of office\r\n"
        f"Auto-Submitted: auto-replied\r\nMessage-ID: {_id('example.net')}\r\n\r\n"
        "I am away until Monday.\r\n"
    ).encode()


def personal(to: str) -> bytes:
    """A person writing back: no report at all."""
    return (
        f"From: member@example.net\r\nTo: {to}\r\nSubject: Re: Mohamed Harkat\r\n"
        f"Message-ID: {_id('example.net')}\r\n\r\nCount me in for the vigil on Friday.\r\n"
    ).encode()
