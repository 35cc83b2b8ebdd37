"""What a relay's reply (or a failed connection) means for the run: one table, tested as one.

Four kinds, each handled differently by the scheduler:

- ``THROTTLE``: the relay wants fewer messages per second from us. Only this slows the run;
  the member is retried soon, on its own bounded budget (``retry.throttle_attempts``).
- ``TEMPORARY``: a problem with one recipient (greylisting, mailbox full, routing, most 4xx).
  The member is retried on the ``retry.delays`` schedule; nobody else slows down.
- ``REFUSED``: the relay refuses *us* (authentication, TLS, the sender, relaying denied, a
  closed port). Retrying each member cannot help: the run stops and members stay pending.
- ``PERMANENT``: a 5xx about this recipient: failed.
"""

from __future__ import annotations

import enum
import re
import ssl

import aiosmtplib


class Kind(enum.StrEnum):
    """What a refusal is about."""

    THROTTLE = "throttle"
    TEMPORARY = "temporary"
    REFUSED = "refused"
    PERMANENT = "permanent"


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# A 450/451/452 about how much or how fast we send, or how many sessions we hold.
_RATE = re.compile(
    r"throttl|\brate\b|rate.?limit|too (many|fast|much)|slow (it )?down|sending limit|"
    r"limit exceeded|exceeded .*limit|connection|concurren|frequency|per (second|minute|hour)",
    re.I,
)
# Per-recipient deferrals whose wording could otherwise look like rate limiting.
_RECIPIENT = re.compile(
    r"greylist|graylist|grey-list|gray-list|postgrey|mailbox (is )?full|over ?quota|"
    r"too many recipients|recipient address rejected|user unknown",
    re.I,
)
# A 5.7.x that is about the sender or our right to send, not about the recipient.
_ABOUT_US = re.compile(
    r"sender|mail from|from address|relay(ing)? (access )?(denied|not permitted)|"
    r"not (permitted|allowed|authori[sz]ed) to (send|relay)|authenticat|"
    r"identit(y|ies)|not verified",
    re.I,
)
_AUTH_CODES = (530, 534, 535, 538)  # RFC 4954: authentication required / refused
THROTTLE_CODES = (421, 454)
RATE_CODES = (450, 451, 452)


def enhanced(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.search(text[:20])
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def classify_reply(code: int | None, text: str) -> Kind:
    """The kind of a refusal; ``code`` None is a transaction cut short (lost, timed out)."""
    if code is None or code < 400:
        return Kind.TEMPORARY
    status = enhanced(text)
    if code >= 500:
        if code in _AUTH_CODES:
            return Kind.REFUSED
        if status is not None and status[1] == 7 and _ABOUT_US.search(text):
            return Kind.REFUSED
        if status is None and _ABOUT_US.search(text) and "recipient" not in text.lower():
            return Kind.REFUSED
        return Kind.PERMANENT
    if _RECIPIENT.search(text) or (status is not None and status[1] in (1, 2)):
        return Kind.TEMPORARY  # X.1.x address and X.2.x mailbox status: this recipient's
    if code in THROTTLE_CODES:
        return Kind.THROTTLE
    if status is not None and status[1:] == (7, 0) and re.search(r"throttl", text, re.I):
        return Kind.THROTTLE
    if code in RATE_CODES and _RATE.search(text):
        return Kind.THROTTLE
    if status is not None and status[1] == 7 and status[2] == 1 and _RATE.search(text):
        return Kind.THROTTLE  # 4.7.1 "rate limit exceeded" under another code
    return Kind.TEMPORARY


def is_timeout(code: int | None, text: str) -> bool:
    """A transaction that ended because the relay did not answer in time."""
    lowered = text.lower()
    return code is None and ("timeout" in lowered or "timed out" in lowered)


def connect_failure(exc: BaseException) -> tuple[Kind, str]:
    """Why a session could not be opened, in a few words, and its kind.

    ``THROTTLE`` means the relay answered but will not take another session now (a 421 or
    4xx banner, a reset right after connecting): with other sessions open, that is a
    session limit to live with. Anything else means the relay cannot be used.
    """
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Kind.REFUSED, f"authentication refused ({exc.code} {_short(exc.message)})"
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        reason = getattr(exc if isinstance(exc, ssl.SSLError) else cause, "reason", None)
        return Kind.REFUSED, f"TLS failed ({reason or _short(str(exc))})"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "STARTTLS" in str(exc):
        return Kind.REFUSED, f"TLS failed ({_short(str(exc))})"
    if isinstance(exc, ConnectionRefusedError) or isinstance(cause, ConnectionRefusedError):
        return Kind.REFUSED, "connection refused"
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError | TimeoutError):
        return Kind.REFUSED, "no answer in time"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {_short(exc.message)}"
        if 400 <= exc.code < 500:
            return Kind.THROTTLE, text
        return Kind.REFUSED, text
    if isinstance(exc, ConnectionResetError | aiosmtplib.SMTPServerDisconnected) or isinstance(
        cause, ConnectionResetError
    ):
        return Kind.THROTTLE, "connection closed by the relay"
    if isinstance(exc, OSError) and exc.strerror:
        return Kind.REFUSED, exc.strerror.lower()
    return Kind.REFUSED, _short(str(exc)) or type(exc).__name__


def hint(cause: str) -> str:
    """What to check, for the one line a run that cannot connect ends with."""
    if cause.startswith("authentication"):
        return "check smtp.username and the password in smtp.password_env"
    if cause.startswith("TLS"):
        return "check smtp.tls and smtp.ca_file"
    return "is the relay running?"


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 120 else line[:117] + "..."
