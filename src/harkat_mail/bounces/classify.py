"""One returned message -> a verdict: bounce, complaint, auto-reply or other, per recipient.

Standards first: RFC 3464 delivery status notifications and RFC 5965 ARF feedback reports say who
failed and why in fields; RFC 3834 auto-replies are recognised and ignored. Bounces in an MTA's own
format fall back to flufl.bounce's detectors for the recipient and to our rules (reasons.py) for
the class. classify() never raises: a message it cannot read is "other".
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import Any, Literal

from .reasons import BounceClass, best_status, bounce_class
from .text import (
    addresses_in,
    around,
    auto_reply,
    bounce_like,
    clean,
    header,
    human_text,
    message_ids_in,
    returned_parts,
)

Kind = Literal["bounce", "complaint", "auto-reply", "other"]
Action = Literal["suppress", "count", "none"]
ACTIONS: dict[BounceClass, Action] = {
    "hard": "suppress",
    "complaint": "suppress",
    "soft": "count",
    "block": "none",
}
ENVELOPE_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
# ARF feedback types that are not a member's complaint (RFC 6591 authentication failure reports).
NOT_COMPLAINTS = frozenset({"auth-failure", "dkim", "sender-id", "spf", "not-spam"})


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a report is about. ``address`` is "" when the report does not name it:
    attribute it by the VERP token in ``Verdict.envelope_to`` or by ``Verdict.message_ids``."""

    address: str
    status: str
    bounce_class: BounceClass
    action: Action
    diagnostic: str


@dataclass(frozen=True)
class Verdict:
    """What a returned message says, and where it points back to the message we sent."""

    kind: Kind
    recipients: tuple[BouncedRecipient, ...] = ()
    message_ids: tuple[str, ...] = ()
    envelope_to: tuple[str, ...] = ()


def recipient(
    address: str, status: str, diagnostic: str, *, delayed: bool = False
) -> BouncedRecipient:
    """A bounced recipient with its class and action decided by the rules."""
    diagnostic = clean(diagnostic)
    status = best_status(status, diagnostic)
    kind = bounce_class(status, diagnostic, delayed=delayed)
    address = address.strip().strip("<>").lower()
    return BouncedRecipient(address, status, kind, ACTIONS[kind], diagnostic)


def classify(data: bytes) -> Verdict:
    """The verdict on one message's bytes; "other" (never an exception) when it cannot be read."""
    try:
        msg = email.message_from_bytes(data)
        return _verdict(msg)
    except Exception:  # a hostile or broken message must not stop a mailbox run
        return Verdict("other")


def _verdict(msg: Message) -> Verdict:
    envelope = _envelope_to(msg)
    ids = _message_ids(msg)
    status_parts: list[Message] = []
    feedback: Message | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            status_parts.append(part)
        elif ctype == "message/feedback-report" and feedback is None:
            feedback = part
    if feedback is not None or msg.get_param("report-type") == "feedback-report":
        return _complaint(msg, feedback, ids, envelope)
    if status_parts:
        found = _dsn(msg, status_parts)
        if found:
            return Verdict("bounce", found, ids, envelope)
    if auto_reply(msg) and not bounce_like(msg):
        return Verdict("auto-reply", (), ids, envelope)
    if status_parts or bounce_like(msg):
        return Verdict("bounce", _fallback(msg, envelope), ids, envelope)
    if _hotmail_complaint(msg):
        return _complaint(msg, None, ids, envelope)
    return Verdict("other", (), ids, envelope)


def _envelope_to(msg: Message) -> tuple[str, ...]:
    values = [str(v) for name in ENVELOPE_HEADERS for v in (msg.get_all(name) or [])]
    found = [addr.lower() for _, addr in getaddresses(values) if "@" in addr]
    return tuple(dict.fromkeys(found))


def _message_ids(msg: Message) -> tuple[str, ...]:
    found: list[str] = []
    for part in returned_parts(msg):
        found.extend(message_ids_in(str(part.get("message-id", ""))))
    if not found:
        found.extend(message_ids_in(header(msg, "in-reply-to")))
        for line in re.findall(r"(?im)^message-id:[ \t]*(<[^>\s]+>)", human_text(msg, cut=False)):
            found.append(line)
    return tuple(dict.fromkeys(found))


def _blocks(part: Message) -> list[Message]:
    """The per-message and per-recipient field blocks of a delivery-status part."""
    payload: Any = part.get_payload()
    if isinstance(payload, list):
        blocks = [p for p in payload if isinstance(p, Message)]
        if len(blocks) > 1 or not blocks:
            return blocks
        payload = blocks[0].as_string()
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    text = str(payload).replace("\r\n", "\n")
    chunks = [b.strip() for b in re.split(r"\n[ \t]*\n", text)]
    return [email.message_from_string(b + "\n") for b in chunks if b]


def _address_field(block: Message, name: str) -> str:
    value = clean(str(block.get(name, "")))
    if ";" in value:
        value = value.split(";", 1)[1]
    return value.strip().strip("<>").strip()


def _dsn(msg: Message, parts: list[Message]) -> tuple[BouncedRecipient, ...]:
    text = human_text(msg)
    fields: list[tuple[str, str, str, str]] = []
    for part in parts:
        for block in _blocks(part):
            action = clean(str(block.get("action", ""))).lower()
            address = _address_field(block, "original-recipient") or _address_field(
                block, "final-recipient"
            )
            if not address and not action:
                continue  # the per-message block (Reporting-MTA, Arrival-Date)
            if action.startswith(("delivered", "relayed", "expanded")):
                continue
            diagnostic = clean(str(block.get("diagnostic-code", "")))
            if ";" in diagnostic[:12]:
                diagnostic = diagnostic.split(";", 1)[1].strip()
            status = clean(str(block.get("status", "")))
            fields.append((address, action, status, diagnostic))
    named = tuple(address for address, *_ in fields)
    found = [
        recipient(
            address,
            status,
            diagnostic or around(text, address, named) or text[:1500],
            delayed=action.startswith("delay"),
        )
        for address, action, status, diagnostic in fields
    ]
    return _once(found)


def _once(found: list[BouncedRecipient]) -> tuple[BouncedRecipient, ...]:
    """One verdict per address (some MTAs repeat a recipient block per alias expansion)."""
    return tuple({r.address: r for r in reversed(found)}[a] for a in dict.fromkeys(
        r.address for r in found
    ))


def _complaint(
    msg: Message, feedback: Message | None, ids: tuple[str, ...], envelope: tuple[str, ...]
) -> Verdict:
    fields = Message()
    if feedback is not None:
        payload: Any = feedback.get_payload()
        blocks = _blocks(feedback) if isinstance(payload, list | str | bytes) else []
        if blocks:
            fields = blocks[0]
    feedback_type = clean(str(fields.get("feedback-type", "abuse"))).lower()
    if feedback_type in NOT_COMPLAINTS:
        return Verdict("other", (), ids, envelope)
    rcpt_to = [str(v) for v in fields.get_all("original-rcpt-to") or []]
    addresses = [a for _, a in getaddresses(rcpt_to) if a]
    if not addresses:
        for part in returned_parts(msg):
            names = ("x-hmxmroriginalrecipient", "to")
            values = [str(v) for n in names for v in part.get_all(n) or []]
            addresses = [a for _, a in getaddresses(values) if "@" in a][:1]
            if addresses:
                break
    if not addresses:
        addresses = [str(msg.get("x-hmxmroriginalrecipient", "")).strip()]
    diagnostic = f"feedback report: {feedback_type}"
    recipients = tuple(
        BouncedRecipient(a.strip().strip("<>").lower(), "", "complaint", "suppress", diagnostic)
        for a in dict.fromkeys(addresses)
    )
    return Verdict("complaint", recipients, ids, envelope)


def _hotmail_complaint(msg: Message) -> bool:
    """Outlook.com's JMRP reports: the complained-of message attached, its recipient in a header."""
    return any(p.get("x-hmxmroriginalrecipient") for p in returned_parts(msg)) or bool(
        msg.get("x-hmxmroriginalrecipient")
    )


def _fallback(msg: Message, envelope: tuple[str, ...]) -> tuple[BouncedRecipient, ...]:
    """A bounce in an MTA's own format: flufl.bounce names the recipients, our rules the class."""
    from flufl.bounce import all_failures

    text = human_text(msg)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # its heuristics can trip on malformed parts
        temporary, permanent = frozenset(), frozenset()
    failed = permanent | temporary
    named = {raw.decode("ascii", "replace").lower(): raw in permanent for raw in failed}
    if not named:
        named = {a: True for a in _named_in(msg, text, envelope)}
    others = tuple(named)
    found = [
        recipient(address, "", around(text, address, others) or text[:1500], delayed=not permanent)
        for address, permanent in sorted(named.items())
    ]
    return _once(found) or (recipient("", "", text[:1500]),)


def _named_in(msg: Message, text: str, envelope: tuple[str, ...]) -> list[str]:
    """Addresses a plain-text bounce names, less its own and the original sender's (at most 10)."""
    own = set(envelope)
    for source in [msg, *returned_parts(msg)]:
        own.update(a.lower() for a in addresses_in(header(source, "from")))
    found = [
        a for a in addresses_in(text)
        if a not in own and not a.startswith(("postmaster@", "mailer-daemon@", "abuse@"))
    ]
    return found if len(found) <= 10 else []


def to_json(source: str, verdict: Verdict) -> dict[str, Any]:
    """The ``bounces check --format json`` object for one message."""
    return {
        "source": source,
        "kind": verdict.kind,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "class": r.bounce_class,
                "action": r.action,
                "diagnostic": r.diagnostic,
            }
            for r in verdict.recipients
        ],
    }
