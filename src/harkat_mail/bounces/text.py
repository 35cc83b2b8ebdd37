"""Reading a returned message: its human-readable text, the returned original, its signals."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

WHITESPACE = re.compile(r"\s+")
# Control characters (C0, DEL, C1) a hostile server may put in its reply: they would reach a
# terminal (escape sequences), the send log and the report.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
HEADERS = BytesHeaderParser()
TAGGED = re.compile(r"^(?:smtp|rfc822|mailto)[=:;]")
# Starts only where a run of address characters starts: linear on long runs without an "@".
ADDRESS = re.compile(r"(?<![\w.+=!#$%&'*/?^`{|}~-])[\w.+=!#$%&'*/?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# Where MTAs start quoting the returned message in a plain-text bounce: our own newsletter's words
# ("policy", "blocked") must not be read as the reason.
RETURNED_MARKERS = re.compile(
    r"^(?:[-=_ ]*(?:this is a copy of|below this line is a copy|original message follows|"
    r"the (?:original )?(?:message|header)s? (?:of the original message )?(?:is|are|was) "
    r"(?:as follows|following|included)|unsent message below|original message|returned message|"
    r"message headers? follows?|headers of the original|-+ ?original message|"
    r"text of the returned message|the header of the original message|"
    r"the first \d+ lines of (?:your|the) original message)|"
    r"(?:received|return-path|message-id|x-[\w-]+): )",
    re.IGNORECASE | re.MULTILINE,
)
DAEMONS = re.compile(
    r"mailer-daemon|postmaster|mail delivery|mail administrator|mail-daemon|mdaemon|<>", re.I
)
BOUNCE_SUBJECTS = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|has failed|problem|notification)|"
    r"returned mail|mail delivery|failure notice|could not be delivered|non[- ]?delivery|"
    r"delivery report|not delivered|nondeliverable|returned to sender|delivery error|"
    r"mail system error|warning: could not send|rejected:|message not delivered|"
    r"non remis|non distribuable|échec de (?:la )?(?:livraison|remise)|unzustellbar|"
    r"nicht zustellbar|user unknown|unknown user|no such user|mail error",
    re.IGNORECASE,
)
AUTO_SUBJECTS = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"away from|on vacation|vacation|on leave|absence|absent|réponse automatique|"
    r"reponse automatique|message d'absence|abwesen|automatische antwort|respuesta autom|"
    r"fuera de la oficina|risposta automatica|automatisch antwoord|afwezig|i am away|i'm away|"
    r"autom[aā]tiska atbilde",
    re.IGNORECASE,
)

AUTO_BODIES = re.compile(
    r"\b(?:i am|i'm|je suis) (?:currently )?"
    r"(?:out of (?:the )?office|away|on (?:vacation|leave|holiday)|absente?)\b",
    re.IGNORECASE,
)


def clean(value: str) -> str:
    """One line: whitespace and folding collapsed, control characters dropped, at most 1,000
    characters."""
    return WHITESPACE.sub(" ", CONTROLS.sub(" ", value)).strip()[:1000]


def header(msg: Message, name: str) -> str:
    """A header's text, encoded words (RFC 2047) decoded when they can be."""
    value = str(msg.get(name, ""))
    if "=?" in value:
        with contextlib.suppress(ValueError, LookupError, UnicodeError):
            value = str(make_header(decode_header(value)))
    return clean(value)


def message_ids_in(text: str) -> list[str]:
    return MESSAGE_ID.findall(text)


STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
RETURNED_TYPES = ("message/rfc822", "message/global")
RETURNED_HEADER_TYPES = ("text/rfc822-headers", "text/global-headers")


@dataclass
class Parts:
    """A report's parts by role, found in one walk that never enters the returned original."""

    status: list[Message] = field(default_factory=list)
    feedback: Message | None = None
    returned: list[Message] = field(default_factory=list)
    texts: list[Message] = field(default_factory=list)


def dissect(msg: Message) -> Parts:
    """Status parts, the feedback report, the returned original's headers and the text parts."""
    parts = Parts()
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if ctype in STATUS_TYPES:
            parts.status.append(part)
        elif ctype == "message/feedback-report":
            parts.feedback = parts.feedback or part
        elif ctype in RETURNED_TYPES:
            payload: Any = part.get_payload()
            if isinstance(payload, list):
                parts.returned.extend(p for p in payload[:1] if isinstance(p, Message))
        elif ctype in RETURNED_HEADER_TYPES:
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                parts.returned.append(HEADERS.parsebytes(raw))
        elif part.is_multipart():
            if not ctype.startswith("message/"):
                children: Any = part.get_payload()
                stack.extend(reversed([p for p in children if isinstance(p, Message)]))
        elif ctype.startswith("text/"):
            parts.texts.append(part)
    return parts


def _decoded(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def words(texts: list[Message], *, cut: bool = True) -> str:
    """The bounce's own words: its plain text parts (an HTML part only when there is none),
    cut where an MTA starts quoting the original (unless ``cut`` is False)."""
    found: list[str] = []
    for part in texts:
        ctype = part.get_content_type()
        if ctype == "text/plain" or (ctype != "text/html" and not found):
            found.append(_decoded(part))
    if not any(t.strip() for t in found):
        html = [p for p in texts if p.get_content_type() == "text/html"][:1]
        found = [re.sub(r"<[^>]*>", " ", _decoded(p)) for p in html]
    joined = "\n".join(found).replace("\r\n", "\n")
    if cut:
        marker = RETURNED_MARKERS.search(joined, 40)
        if marker:
            joined = joined[: marker.start()]
    return joined[:20000]


def around(text: str, address: str, others: tuple[str, ...] = ()) -> str:
    """What the text says about ``address``: from the line naming it, up to 800 characters or
    the line naming the next of ``others``, whichever comes first."""
    if not address:
        return ""
    low = text.lower()
    at = low.find(address.lower())
    if at < 0:
        return ""
    start = text.rfind("\n", 0, at) + 1
    end = min(len(text), start + 800)
    for other in others:
        pos = low.find(other.lower(), at + len(address)) if other != address else -1
        if 0 <= pos < end:
            line = text.rfind("\n", 0, pos) + 1
            end = line if line > at else pos
    return clean(text[start:end])


def addresses_in(text: str) -> list[str]:
    """Addresses written in a text, lower-cased, in order, once each."""
    found = (TAGGED.sub("", a.lower().strip(".'")) for a in ADDRESS.findall(text))
    return list(dict.fromkeys(found))


def bounce_like(msg: Message) -> bool:
    """A sender or subject that says this is a delivery failure report."""
    sender = header(msg, "from")
    return_path = header(msg, "return-path")
    subject = header(msg, "subject")
    return bool(
        DAEMONS.search(sender)
        or BOUNCE_SUBJECTS.search(subject)
        or (return_path in ("<>", "") and msg.get_content_type() == "multipart/report")
    )


def auto_reply(msg: Message, text: str) -> bool:
    """RFC 3834 headers and the usual vendor ones, an out-of-office subject or opening words."""
    submitted = header(msg, "auto-submitted").lower()
    precedence = header(msg, "precedence").lower()
    return bool(
        submitted.startswith("auto-replied")
        or msg.get("x-autoreply")
        or msg.get("x-autorespond")
        or msg.get("x-autoresponder")
        or precedence == "auto_reply"
        or AUTO_SUBJECTS.search(header(msg, "subject"))
        or AUTO_BODIES.search(text[:300])
    )
