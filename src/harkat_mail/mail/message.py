"""Pure functions: rendered content + contact + campaign -> an ``OutgoingMessage``."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from ..models import Campaign, Contact, OutgoingMessage, RenderedContent
from .tokens import secret_from_env
from .verp import Verp

_POLICY = policy.SMTP.clone(max_line_length=998)
# Characters kept of a display name and of a subject (and three times as many UTF-8 octets):
# member values can be any length, and a relay refuses lines over 998 octets and header
# sections of many kilobytes. A real name fits in 200; a subject in 400 (two languages'
# subjects joined by " / " included). 600 octets of name encode to one 812-character word.
MAX_NAME = 200
MAX_SUBJECT = 400


_BREAKABLE = re.compile(r"[^\S\u00a0\u202f]+")  # whitespace but the no-break spaces


def header_safe(value: str, keep_no_break: bool = False) -> str:
    """One line: CR, LF, NUL and other control characters become spaces, runs collapse;
    ``keep_no_break``: no-break spaces stay (a French subject's ``Canada\u202f:`` holds
    together in an inbox).

    A lone surrogate (no character; it cannot be encoded) becomes U+FFFD.
    """
    cleaned = "".join(
        " " if ord(c) < 32 or ord(c) == 127 else "\ufffd" if "\ud800" <= c <= "\udfff" else c
        for c in value
    )
    if not keep_no_break:
        return " ".join(cleaned.split())
    return _BREAKABLE.sub(" ", cleaned).strip()


def header_text(value: str, limit: int, keep_no_break: bool = False) -> str:
    """``header_safe``, then at most ``limit`` characters and ``3 * limit`` UTF-8 octets.

    Cut on a character boundary: never inside a character's UTF-8 sequence.
    """
    text = header_safe(value, keep_no_break)[:limit]
    data = text.encode("utf-8")
    if len(data) > 3 * limit:  # only characters outside the BMP (emoji) take 4 octets
        text = data[: 3 * limit].decode("utf-8", "ignore")  # drops a cut-off last character
    return text.rstrip(" ")


@functools.lru_cache(maxsize=16)
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rsplit("@", 1)[1]


def message_id(campaign: Campaign, key: str) -> str:
    """Stable per campaign x recipient, so a resend is recognisably the same message."""
    domain = _domain(campaign.sender_for(campaign.default_language))
    digest = hashlib.sha256(f"{campaign.name}\0{key}".encode()).hexdigest()[:32]
    return f"<{digest}.{campaign.name}@{domain}>"


def envelope_sender(campaign: Campaign, from_address: str) -> Callable[[str], str]:
    """Member key -> envelope MAIL FROM: the VERP address, ``bounces.address``, or From.

    The message keeps its From either way; Return-Path is written by the receiving relay.
    """
    bounces = campaign.bounces
    if bounces is None:
        return lambda _key: from_address
    if not bounces.verp:
        return lambda _key: bounces.address
    secret = secret_from_env(campaign.unsubscribe.secret_env, required=False)
    verp = Verp(bounces.address, secret)
    return functools.partial(verp.address, campaign.name)


def _address(display: str, addr: str) -> Address:
    return Address(display_name=header_text(display, MAX_NAME), addr_spec=addr)


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
    msg["Subject"] = header_text(content.subject, MAX_SUBJECT, keep_no_break=True)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg_id = message_id(campaign, contact.key)
    msg["Message-ID"] = msg_id
    if reply_to := campaign.reply_to_for(language):
        reply_name, reply_addr = parseaddr(reply_to)
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
        sender=envelope_sender(campaign, sender_addr)(contact.key),
        recipient=contact.email,
        message_id=msg_id,
        data=msg.as_bytes(),
    )
