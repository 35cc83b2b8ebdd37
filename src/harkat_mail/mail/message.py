"""Pure functions: rendered content + contact + campaign -> an ``OutgoingMessage``."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from ..models import Campaign, Contact, OutgoingMessage, RenderedContent

_POLICY = policy.SMTP.clone(max_line_length=998)


def header_safe(value: str) -> str:
    """One line: CR, LF, NUL and other control characters become spaces, runs collapse."""
    cleaned = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    return " ".join(cleaned.split())


@functools.lru_cache(maxsize=16)
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rsplit("@", 1)[1]


def message_id(campaign: Campaign, key: str) -> str:
    """Stable per campaign x recipient, so a resend is recognisably the same message."""
    domain = _domain(campaign.sender_for(campaign.default_language))
    digest = hashlib.sha256(f"{campaign.name}\0{key}".encode()).hexdigest()[:32]
    return f"<{digest}.{campaign.name}@{domain}>"


def _address(display: str, addr: str) -> Address:
    return Address(display_name=header_safe(display), addr_spec=addr)


def list_unsubscribe(campaign: Campaign, url: str) -> str | None:
    """The List-Unsubscribe value: the HTTPS link first, then the mailto if configured."""
    parts = []
    if url.startswith("https://"):
        parts.append(f"<{url}>")
    if campaign.unsubscribe.mailto:
        parts.append(f"<mailto:{campaign.unsubscribe.mailto}?subject=unsubscribe>")
    return ", ".join(parts) or None


def build_message(
    campaign: Campaign,
    contact: Contact,
    language: str,
    content: RenderedContent,
    unsubscribe: str,
    now: datetime | None = None,
) -> OutgoingMessage:
    """A multipart/alternative message (text first, then HTML) with its envelope."""
    sender_name, sender_addr = parseaddr(campaign.sender_for(language))
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = _address(sender_name, sender_addr)
    msg["To"] = _address(contact.display_name, contact.email)
    msg["Subject"] = header_safe(content.subject)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg_id = message_id(campaign, contact.key)
    msg["Message-ID"] = msg_id
    if campaign.reply_to:
        reply_name, reply_addr = parseaddr(campaign.reply_to)
        msg["Reply-To"] = _address(reply_name, reply_addr)
    msg["List-Id"] = f"<{campaign.list_id}>"
    unsub = list_unsubscribe(campaign, unsubscribe)
    if unsub:
        msg["List-Unsubscribe"] = unsub
        if unsub.startswith("<https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(content.text, subtype="plain", charset="utf-8")
    msg.add_alternative(content.html, subtype="html", charset="utf-8")
    msg["Content-Language"] = language  # after the body: set_content clears Content-* headers
    return OutgoingMessage(
        key=contact.key,
        sender=sender_addr,
        recipient=contact.email,
        message_id=msg_id,
        data=msg.as_bytes(),
    )
