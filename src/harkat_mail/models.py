"""Frozen dataclasses and enums that the stages pass to each other. No I/O here."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# The campaign's settings live in config.py; re-exported (``__all__``) so ``models`` stays the
# one import for whatever the stages pass each other.
from .config import (
    DEFAULT_SECRET_ENV,
    AuthMode,
    BounceConfig,
    Campaign,
    DkimConfig,
    Identification,
    LetterConfig,
    ListConfig,
    RetryPolicy,
    SendWindow,
    SmtpConfig,
    TlsMode,
    UnsubscribeConfig,
)

__all__ = [
    "DEFAULT_SECRET_ENV",
    "AuthMode",
    "BounceConfig",
    "Campaign",
    "DkimConfig",
    "Identification",
    "LetterConfig",
    "ListConfig",
    "RetryPolicy",
    "SendWindow",
    "SmtpConfig",
    "TlsMode",
    "UnsubscribeConfig",
]


REASON_LABELS = ("duplicate", "invalid address", "outside segment", "suppressed", "no consent")


def reason_label(reason: str) -> str:
    """Group skip reasons for summaries: 'duplicate of x row 3' -> 'duplicate'."""
    for prefix in REASON_LABELS:
        if reason.startswith(prefix):
            return prefix
    return reason


def send_log_kind(location: str) -> Literal["postgresql", "file"]:
    """Whether a send-log location is a PostgreSQL URL or a SQLite file path.

    Scheme letters in any case count (``Postgresql://``); any other ``scheme://`` and libpq's
    ``key=value`` form raise ``ValueError``: taken as a file name, they would start an empty
    send log, and every member would be sent the message again.
    """
    text = location.strip()
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() in ("postgresql", "postgres"):
        return "postgresql"
    if re.match(r"^[A-Za-z]:[\\/]", text):  # a Windows drive
        return "file"
    if sep or re.match(r"^[\w.+-]+:/", text):
        kind = (scheme if sep else text.split(":", 1)[0])[:20]
        raise ValueError(f"a {kind}: address is no send log; give a file or a postgresql:// URL")
    if re.match(r"^[a-z_]+\s*=", text):
        raise ValueError("libpq's key=value form is not accepted; write a postgresql:// URL")
    return "file"


class State(enum.StrEnum):
    """Send-log states.

    ``pending -> sending -> sent | deferred | failed | unknown``: ``sending`` is committed
    before DATA, ``sent`` only after the relay's 250; a run that dies leaves ``unknown``
    (resent only when asked). ``skipped`` rows record rejected input rows with their reason.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    BOUNCED = "bounced"  # after `sent`: a bounce came back (its class, status, diagnostic kept)
    COMPLAINED = "complained"  # after `sent`: the member reported the message as spam


@dataclass(frozen=True)
class Tries:
    """A member's tries so far, across runs, as the send log keeps them."""

    attempts: int = 0  # every try that reached the relay
    throttled: int = 0  # of which, answered by throttling
    first: float | None = None  # when the first try was made (epoch seconds)


@dataclass(frozen=True)
class RenderedLetter:
    """One member's letter: what the link prefills, and the whole text when it was shortened."""

    to: str
    cc: tuple[str, ...]
    subject: str
    body: str  # as prefilled (sent with CRLF line breaks); shorter than ``full_body`` if cut
    full_body: str
    mailto: str  # the RFC 6068 link

    @property
    def shortened(self) -> bool:
        """True when the link carries only part of the letter and a link to the rest."""
        return self.body != self.full_body


@dataclass(frozen=True)
class Contact:
    """One kept member: the cleaned address, their language and every cleaned column."""

    key: str  # normalised address: the identity in the send log
    email: str  # the address as it is sent
    row: int  # the spreadsheet's row number: the header is row 1, the first member row 2
    source: str
    language: str
    first_name: str = ""
    last_name: str = ""
    member_id: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    consent: str = ""  # the CASL basis a commercial campaign sent under, for the send log

    @property
    def display_name(self) -> str:
        """First and last name as one display name (may be empty)."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class Rejected:
    """An input row that is not sent to, with the one reason why."""

    source: str
    row: int  # as the spreadsheet numbers it (header = row 1)
    email: str
    reason: str
    name: str = ""  # first and last name as the row has them, to find the row by
    member_id: str = ""


def name_rows(rows: Sequence[tuple[str, int]], total: int, shown: int = 5) -> str:
    """``members.csv rows 4, 9, 17, ...``: the first rows of a group, to find them by."""
    parts: list[str] = []
    for source, row in rows[:shown]:
        if parts and parts[-1].startswith(f"{source} row"):
            parts[-1] += f", {row}"
        else:
            parts.append(f"{source} row {row}")
    text = "; ".join(p.replace(" row ", " rows ", 1) if "," in p else p for p in parts)
    return text + (", ..." if total > shown else "")


@dataclass(frozen=True)
class SourceInfo:
    """How one member file was read."""

    name: str
    encoding: str
    delimiter: str
    rows: int


@dataclass(frozen=True)
class ContactList:
    """The outcome of loading: kept contacts, rejected rows, and what was read."""

    contacts: tuple[Contact, ...]
    rejected: tuple[Rejected, ...]
    rows_read: int
    warnings: tuple[str, ...] = ()
    sources: tuple[SourceInfo, ...] = ()


@dataclass(frozen=True)
class RenderedContent:
    """One recipient's subject and bodies, ready to wrap in MIME."""

    subject: str
    html: str
    text: str
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for the wire: envelope plus flattened bytes."""

    key: str
    sender: str  # envelope MAIL FROM
    recipient: str  # envelope RCPT TO
    message_id: str
    data: bytes


@dataclass(frozen=True)
class Limits:
    """A relay's limits, shared by every run that uses it through this store."""

    rate: float | None
    per_hour: int | None
    per_day: int | None


@dataclass(frozen=True)
class Grant:
    """What the shared budget allows now: ``count`` messages, or a wait, or a stop."""

    count: int
    wait: float = 0.0  # seconds until asking again makes sense (count == 0)
    stop: str = ""  # the daily cap is used up: why, and when to resume


class Outcome(enum.StrEnum):
    """A delivery attempt's verdict, mapped onto send-log states."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    LOST = "lost"  # never sent: the send log refused the row (claim lost) or failed


@dataclass(frozen=True)
class DeliveryResult:
    """What the relay said about one message."""

    key: str
    outcome: Outcome
    code: int | None
    reply: str
    relay: str = ""  # the relay that gave the verdict (its label), for the send log
    tried: bool = False  # the try reached the relay: it counts as an attempt
    throttled: bool = False  # the relay answered by throttling (its own budget)


@dataclass(frozen=True)
class RunSummary:
    """What a send run did, for the CLI to print and tests to check."""

    campaign: str
    dry_run: bool
    planned: int
    delivered: int
    deferred: int
    failed: int
    unknown: int
    skipped: Mapping[str, int]
    already_done: int
    seconds: float
    previews: Path | None = None
    warnings: tuple[str, ...] = ()
    interrupted: bool = False
    stopped_because: str = ""  # why the run ended before its list did (cap, relay down)
    lost: int = 0  # not sent or not recorded: another run holds those members now
    next_retry_at: float | None = None  # when the earliest member left deferred is due
    left: int | None = None  # dry run: members the send log says are still to send (None: no log)

    @property
    def rate(self) -> float:
        """Messages handled per second over the run."""
        handled = self.delivered + self.deferred + self.failed + self.unknown
        return handled / self.seconds if self.seconds > 0 else 0.0
