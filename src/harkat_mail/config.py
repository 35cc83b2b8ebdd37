"""The campaign's settings as frozen dataclasses: what the YAML says, validated. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

TlsMode = Literal["starttls", "tls", "none"]
AuthMode = Literal["password", "xoauth2"]
DEFAULT_SECRET_ENV = "HARKAT_UNSUBSCRIBE_SECRET"  # where the unsubscribe-link secret lives


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to deliver. ``local`` means the embedded capture relay."""

    local: bool = True
    host: str = "127.0.0.1"
    port: int = 25
    tls: TlsMode = "starttls"
    username: str | None = None
    password_env: str | None = None
    connections: int = 4
    rate: float | None = None  # messages per second across all connections
    per_hour: int | None = None  # rolling caps, across runs (the send log remembers)
    per_day: int | None = None
    timeout: float = 30.0
    ca_file: Path | None = None  # extra trust anchors; certificates are always verified
    weight: float = 1.0  # in a pool of relays: this relay's share of the messages
    auth: AuthMode = "password"  # xoauth2: an OAuth 2.0 access token (Microsoft 365, Google)
    token_env: str | None = None  # xoauth2: the variable holding the access token
    token_command: tuple[str, ...] = ()  # xoauth2: argv printing one (run once per session)

    @property
    def label(self) -> str:
        """How the send log names this relay: ``host:port`` (``local`` for the capture relay)."""
        return "local" if self.local else f"{self.host}:{self.port}"

    def describe(self) -> str:
        """A human label for prompts and summaries; never includes a password."""
        if self.local:
            return "the embedded capture relay"
        user = f"{self.username}@" if self.username else ""
        auth = ", XOAUTH2" if self.auth == "xoauth2" else ""
        return f"{user}{self.host}:{self.port} (tls: {self.tls}{auth})"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a deferred recipient is tried again."""

    attempts: int = 3  # tries in all, counting the first; then the recipient is failed
    delays: tuple[float, ...] = (10.0, 60.0, 300.0)  # seconds before try 2, 3, ...
    throttle_pause: float = 1.0  # seconds before a throttled member's first retry (then x2)
    throttle_attempts: int = 10  # throttling replies one member may get; then it is failed
    max_age: float = 86400.0  # seconds after its first try that a member stops being retried

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th try (1-based); the last delay repeats."""
        return self.delays[min(attempt, len(self.delays)) - 1] if self.delays else 0.0

    def throttle_delay(self, throttled: int) -> float:
        """The wait after a member's ``throttled``-th throttling reply: doubling, at most 60 s."""
        return float(min(60.0, self.throttle_pause * 2 ** max(throttled - 1, 0)))


@dataclass(frozen=True)
class ListConfig:
    """Which member files to read and which rows to keep."""

    paths: tuple[Path, ...]
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical -> header
    segment_name: str = "all"
    segment: Mapping[str, object] = field(default_factory=dict)
    suppress: tuple[Path, ...] = ()
    sheet: str | None = None  # Excel: the sheet to read (default: the first)
    dedupe_by: str = "email"  # or "member_id": one message per member, first row wins
    deliverability: bool = False  # validate: deliverability -> DNS check of every domain
    consent_required: bool = False  # a commercial campaign: only members with a CASL basis
    consent_column: str = "consent"
    max_mb: int = 512  # largest member or suppression file read, in MiB (and a workbook unpacked)


@dataclass(frozen=True)
class UnsubscribeConfig:
    """The per-recipient unsubscribe link and the List-Unsubscribe header."""

    url: str  # https, where ``harkat-mail unsubscribe-server`` answers
    mailto: str | None = None
    secret_env: str = DEFAULT_SECRET_ENV


@dataclass(frozen=True)
class Identification:
    """CASL: who sends, a mailing address, and a way to reach them, shown in every message."""

    name: Mapping[str, str]  # language -> the sender's name as the message shows it
    mailing_address: str
    contact: str  # an email address, telephone number or web address

    def name_for(self, language: str) -> str:
        """The sender's name in a language, falling back to any one given."""
        return self.name.get(language) or self.name.get("*") or next(iter(self.name.values()))


@dataclass(frozen=True)
class DkimConfig:
    """Sign every message with this domain's key (the public half published at the selector)."""

    domain: str
    selector: str
    key_path: Path


@dataclass(frozen=True)
class SendWindow:
    """When messages may start: weekdays (0 = Monday) and a daily span of local time."""

    days: frozenset[int]
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive (1440: until midnight); start < end
    label: str  # as the YAML wrote it, for messages: "mon-fri 07:00-20:00"

    def contains(self, moment: datetime) -> bool:
        """True when ``moment`` (local time) is inside the window."""
        minute = moment.hour * 60 + moment.minute
        return moment.weekday() in self.days and self.start <= minute < self.end


@dataclass(frozen=True)
class BounceConfig:
    """Where bounces go and how they are read back (``bounces:`` in the YAML)."""

    address: str  # the envelope sender: bounces@domain, or its VERP form
    verp: bool = False  # bounces+TOKEN@domain: each bounce names its campaign and member
    mailbox: str = ""  # a Maildir, mbox, .eml folder, or imaps:// / imap:// URL
    processed: str = "harkat-processed"  # the folder processed messages are moved to
    password_env: str | None = None  # IMAP password, only ever from the environment
    ca_file: Path | None = None  # extra trust anchors for IMAP; certificates always verified
    soft_threshold: int = 3  # soft-bounce score (days with a soft bounce) that suppresses
    block_alert: float = 10.0  # blocks in one campaign that raise the alarm (count, or %)
    block_alert_percent: bool = False  # block_alert is a percentage of the messages sent


@dataclass(frozen=True)
class LetterConfig:
    """A letter members send from their own address, offered as a prefilled ``mailto:`` link.

    Rendered per member from ``folder/<language>.txt`` and ``subject`` (Jinja); a link longer
    than ``max_chars`` is shortened at a paragraph and points at ``full_url`` for the rest.
    """

    to: str  # one bare address (a ``{{ var }}`` already resolved)
    subject: Mapping[str, str]  # language (or "*") -> Jinja source
    folder: Path  # <template folder>/<letter template>/, holding <language>.txt
    cc: tuple[str, ...] = ()
    full_url: Mapping[str, str] = field(default_factory=dict)  # language (or "*") -> https URL
    max_chars: int = 2000  # the whole mailto: link, as mail clients and browsers accept it

    def subject_for(self, language: str) -> str:
        """The subject template for a language ("*" covers every language)."""
        return self.subject.get(language) or self.subject["*"]

    def full_url_for(self, language: str) -> str:
        """Where the full text is published in a language; "" when nowhere."""
        return self.full_url.get(language) or self.full_url.get("*", "")


@dataclass(frozen=True)
class Campaign:
    """A validated campaign: everything a run needs, paths already resolved."""

    source: Path
    name: str
    sender: Mapping[str, str]  # language -> "Name <addr>"
    reply_to: Mapping[str, str]  # language -> "Name <addr>"; empty: no Reply-To
    subject: Mapping[str, str]  # language -> Jinja source of the subject
    template: Path
    contacts: ListConfig
    language_column: str
    default_language: str
    vars: Mapping[str, object]
    smtp: SmtpConfig
    send_log: Path | str  # a SQLite file, or a postgresql:// URL
    outbox: Path
    previews: Path
    unsubscribe: UnsubscribeConfig
    list_id: str
    bilingual: Literal["separate", "combined"] = "separate"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    purpose: Literal["informational", "commercial"] = "informational"
    identification: Identification | None = None
    dkim: DkimConfig | None = None
    lease: float = 60.0  # seconds a silent run keeps its claimed rows before others take over
    timezone: str = ""  # IANA name for the times reports show; "" = the machine's zone
    window: SendWindow | None = None  # when messages may start; a long run pauses outside it
    bounces: BounceConfig | None = None  # envelope sender and bounce mailbox; None: From
    letter: LetterConfig | None = None  # the letter members can send (``letter_mailto``)
    relays: tuple[SmtpConfig, ...] = ()  # a pool (``smtp:`` as a list); ``smtp`` is its first

    @property
    def pool(self) -> tuple[SmtpConfig, ...]:
        """Every relay to deliver through: the pool, or the one ``smtp`` relay."""
        return self.relays or (self.smtp,)

    def sender_for(self, language: str) -> str:
        """The From header for a language, falling back to the default language."""
        return self.sender.get(language) or self.sender[self.default_language]

    def reply_to_for(self, language: str) -> str | None:
        """The Reply-To for a language, falling back to the default language; None: no header."""
        return self.reply_to.get(language) or self.reply_to.get(self.default_language)

    def subject_for(self, language: str) -> str:
        """The subject template for a language, falling back to the default language."""
        return self.subject.get(language) or self.subject[self.default_language]
