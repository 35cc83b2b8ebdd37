"""One returned message -> a verdict: bounce, complaint, auto-reply or other, per recipient.

Standards first: RFC 3464 delivery status notifications and RFC 5965 ARF feedback reports say who
failed and why in fields; RFC 3834 auto-replies are recognised and ignored. A bounce in an MTA's
own format names its recipients in its text (flufl.bounce's detectors decide when that is
unclear), and our rules (reasons.py) give the class. classify() never raises: a message it cannot
read is "other".
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
    Parts,
    addresses_in,
    around,
    auto_reply,
    bounce_like,
    clean,
    dissect,
    header,
    message_ids_in,
    words,
)

Kind = Literal["bounce", "complaint", "auto-reply", "other"]
Action = Literal["suppress", "count", "none"]
ACTIONS: dict[BounceClass, Action] = {
    "hard": "suppress",
    "complaint": "suppress",
    "soft": "count",
    "block": "none",
}
ANGLED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
SENDER_MENTION = re.compile(r"(?<!expanded )from:?\s+(<?[^\s<>]+@[^\s<>:]+)", re.IGNORECASE)
EXPANDED = re.compile(r"expanded from:? <?([^\s<>()]+)", re.IGNORECASE)
ENVELOPE_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
# Bytes of a message read: a report's own parts come before the returned original, and a huge
# message (a returned newsletter with its attachments, or a hostile one) must not fill memory.
MAX_BYTES = 4 << 20
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


class Report:
    """One parsed message and what the classifier reads in it, each found once."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        parts = dissect(msg)
        wrapped = [r for r in parts.returned if r.get_content_type() == "multipart/report"]
        if not parts.status and parts.feedback is None and wrapped:
            inner = dissect(wrapped[0])  # a report forwarded whole, e.g. by a disclaimer gateway
            parts = Parts(inner.status, inner.feedback, inner.returned, parts.texts + inner.texts)
        self.status_parts = parts.status
        self.feedback = parts.feedback
        self.returned = parts.returned
        self.texts = parts.texts
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The report's own words, read on first use."""
        if self._text is None:
            self._text = words(self.texts)
        return self._text


def recipient(
    address: str, status: str, diagnostic: str, *, delayed: bool = False
) -> BouncedRecipient:
    """A bounced recipient with its class and action decided by the rules."""
    diagnostic = clean(diagnostic)
    status = best_status(status, diagnostic)
    kind = bounce_class(status, diagnostic, delayed=delayed)
    address = clean(address).strip("<>").lower()
    return BouncedRecipient(address, status, kind, ACTIONS[kind], diagnostic)


def classify(data: bytes) -> Verdict:
    """The verdict on one message's bytes; "other" (never an exception) when it cannot be read."""
    try:
        return _verdict(Report(email.message_from_bytes(data[:MAX_BYTES])))
    except Exception:  # a hostile or broken message must not stop a mailbox run
        return Verdict("other")


def _verdict(report: Report) -> Verdict:
    msg = report.msg
    envelope = _envelope_to(msg)
    ids = _message_ids(report)
    if report.feedback is not None or msg.get_param("report-type") == "feedback-report":
        return _complaint(report, ids, envelope)
    if report.status_parts:
        found, succeeded = _dsn(report)
        if found:
            return Verdict("bounce", found, ids, envelope)
        if succeeded:  # a delivery (or relay) notification: nothing failed
            return Verdict("other", (), ids, envelope)
    bounce = bounce_like(msg)
    if not bounce and auto_reply(msg, report.text):
        return Verdict("auto-reply", (), ids, envelope)
    if report.status_parts or bounce:
        return Verdict("bounce", _fallback(report, envelope), ids, envelope)
    if _hotmail_complaint(report):
        return _complaint(report, ids, envelope)
    return Verdict("other", (), ids, envelope)


def _envelope_to(msg: Message) -> tuple[str, ...]:
    """The addresses the report was delivered to, exactly as written (VERP tokens intact)."""
    found: list[str] = []
    for name in ENVELOPE_HEADERS:
        for value in msg.get_all(name) or []:
            text = str(value)
            if "<" in text:  # display names or comments around angle addresses
                found.extend(ANGLED.findall(text))
            else:
                bare = (t.strip() for t in text.split(","))
                found.extend(t for t in bare if "@" in t and " " not in t)
    return tuple(dict.fromkeys(a.lower() for a in found))


def _message_ids(report: Report) -> tuple[str, ...]:
    found: list[str] = []
    for part in report.returned:
        found.extend(message_ids_in(str(part.get("message-id", ""))))
    if not found:
        found.extend(message_ids_in(header(report.msg, "in-reply-to")))
        whole = words(report.texts, cut=False)
        found.extend(re.findall(r"(?im)^message-id:[ \t]*(<[^>\s]+>)", whole))
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


def _dsn(report: Report) -> tuple[tuple[BouncedRecipient, ...], bool]:
    """The failed and delayed recipients of the status parts, and whether any was delivered."""
    text = report.text
    succeeded = False
    fields: list[tuple[str, str, str, str]] = []
    for part in report.status_parts:
        for block in _blocks(part):
            action = clean(str(block.get("action", ""))).lower()
            address = _address_field(block, "original-recipient") or _address_field(
                block, "final-recipient"
            )
            if not address and not action:
                continue  # the per-message block (Reporting-MTA, Arrival-Date)
            if action.startswith(("delivered", "relayed", "expanded")):
                succeeded = True
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
    return _once(found), succeeded


def _once(found: list[BouncedRecipient]) -> tuple[BouncedRecipient, ...]:
    """One verdict per address, the first (some MTAs repeat a block per alias expansion)."""
    first: dict[str, BouncedRecipient] = {}
    for r in found:
        first.setdefault(r.address, r)
    return tuple(first.values())


def _complaint(report: Report, ids: tuple[str, ...], envelope: tuple[str, ...]) -> Verdict:
    msg, feedback = report.msg, report.feedback
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
        for part in report.returned:
            names = ("x-hmxmroriginalrecipient", "to")
            values = [str(v) for n in names for v in part.get_all(n) or []]
            addresses = [a for _, a in getaddresses(values) if "@" in a][:1]
            if addresses:
                break
    if not addresses:
        addresses = [str(msg.get("x-hmxmroriginalrecipient", "")).strip()]
    diagnostic = f"feedback report: {feedback_type}"
    recipients = tuple(
        BouncedRecipient(clean(a).strip("<>").lower(), "", "complaint", "suppress", diagnostic)
        for a in dict.fromkeys(addresses)
    )
    return Verdict("complaint", recipients, ids, envelope)


def _hotmail_complaint(report: Report) -> bool:
    """Outlook.com's JMRP reports: the complained-of message attached, its recipient in a header."""
    return any(p.get("x-hmxmroriginalrecipient") for p in report.returned) or bool(
        report.msg.get("x-hmxmroriginalrecipient")
    )


def _fallback(report: Report, envelope: tuple[str, ...]) -> tuple[BouncedRecipient, ...]:
    """A bounce in an MTA's own format. The addresses in X-Failed-Recipients, else those it lists
    one per line, else the one address it names (other than ours) are the recipients; failing
    that, flufl.bounce's detectors decide. Our rules give the class."""
    text = report.text
    candidates = _named_in(report, envelope)
    failed = addresses_in(header(report.msg, "x-failed-recipients"))  # Exim's and Gmail's header
    listed = failed or [a for a in candidates if _listed(text, a)]
    listed += [a for a in addresses_in(" ".join(EXPANDED.findall(text))) if listed]
    if listed:
        named = dict.fromkeys(listed, True)
    elif len(candidates) == 1:
        named = {candidates[0]: True}
    else:
        named = _flufl(report.msg) or dict.fromkeys(candidates, True)
    others = tuple(named)
    found = [
        recipient(address, "", around(text, address, others) or text[:1500], delayed=not final)
        for address, final in sorted(named.items())
    ]
    return _once(found) or (recipient("", "", text[:1500]),)


def _listed(text: str, address: str) -> bool:
    """Whether ``address`` starts a line, as in the failed-recipient lists of most MTAs: alone,
    or followed by ":", "(", "..." or "-" (not by prose such as "fails, try ...")."""
    low = text.lower()
    at = low.find(address)
    while at >= 0:
        start = low.rfind("\n", 0, at) + 1
        after = low[at + len(address) : at + len(address) + 4].lstrip(" \t>")
        if not low[start:at].strip(" \t*>-<") and (after[:1] in ("", "\n", ":", "(", "-") or (
            after.startswith("...")
        )):
            return True
        at = low.find(address, at + 1)
    return False


def _flufl(msg: Message) -> dict[str, bool]:
    """flufl.bounce's failed recipients, each with whether it called the failure permanent."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # its heuristics can trip on malformed parts
        return {}
    failed = temporary | permanent
    return {raw.decode("ascii", "replace").lower(): raw in permanent for raw in failed}


def _named_in(report: Report, envelope: tuple[str, ...]) -> list[str]:
    """Addresses a plain-text bounce names, less its own, the original sender's and any it
    names as a sender ("mail from ..."); at most 10."""
    own = set(envelope)
    for source in [report.msg, *report.returned]:
        own.update(addresses_in(header(source, "from")))
    own.update(addresses_in(" ".join(SENDER_MENTION.findall(report.text))))
    found = [
        a
        for a in addresses_in(report.text)
        if a not in own
        and not a.startswith(("postmaster@", "mailer-daemon@", "abuse@"))
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
