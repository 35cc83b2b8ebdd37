"""The reply table: what each relay reply means for the run, one row per real-world reply."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from harkat_mail.delivery.replies import Kind, classify_reply, connect_failure, hint, is_timeout

T, R, U, P = Kind.TEMPORARY, Kind.REFUSED, Kind.THROTTLE, Kind.PERMANENT

TABLE = [
    # Throttling: only these slow the whole run down.
    (454, "4.7.0 Throttling failure: Maximum sending rate exceeded.", U),  # Amazon SES
    (421, "4.7.0 Too many connections from your host", U),
    (421, "4.3.2 Service shutting down", U),
    (451, "4.7.1 Rate limit exceeded, slow down", U),
    (450, "4.7.1 Too many messages, slow down", U),
    (452, "4.3.1 Too many concurrent SMTP connections", U),
    (451, "4.4.5 Server busy: sending rate per minute exceeded", U),
    (450, "4.7.0 Message throttled due to excessive volume", U),
    (451, "4.7.500 Server busy. Please try again later. (S77714) [throttled]", U),  # Microsoft
    # A temporary problem with one recipient: retried on its own schedule, nobody slows.
    (
        450,
        "4.2.0 <ann@example.org>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.org.html",
        T,
    ),
    (451, "4.7.1 Greylisting in action, please come back later", T),
    (450, "4.2.1 The user you are trying to contact is receiving mail at a rate that", T),
    (452, "4.2.2 Mailbox full", T),
    (452, "4.2.2 The email account that you tried to reach is over quota", T),
    (451, "4.4.1 No answer from host", T),
    (451, "4.3.0 Temporary local problem - please try later", T),
    (450, "4.1.1 <bob@example.org>: Recipient address rejected: try again later", T),
    (451, "4.3.0 Try again later", T),
    (452, "4.5.3 Too many recipients", T),
    (None, "SMTPReadTimeoutError: Timed out waiting for server response", T),
    (None, "Undelivered: connection lost before the final dot", T),
    # The relay refuses us: the run stops, members stay pending.
    (535, "5.7.8 Authentication credentials invalid", R),
    (530, "5.7.0 Authentication required", R),
    (553, "5.7.1 <news@example.org>: Sender address rejected: not owned by user", R),
    (554, "5.7.1 <bob@example.org>: Relay access denied", R),
    (550, "5.7.1 Client host rejected: not authorized to send as this sender", R),
    (554, "Message rejected: Email address is not verified. The following identities failed", R),
    # Permanent, about this recipient.
    (550, "5.1.1 <bob@example.org>: Recipient address rejected: User unknown", P),
    (550, "5.7.1 <bob@example.org>: Recipient address rejected: Access denied", P),
    (552, "5.2.2 Mailbox full, over quota for too long", P),
    (554, "5.7.1 Message rejected as spam", P),
    (550, "5.4.1 Recipient address rejected: Access denied", P),
]


@pytest.mark.parametrize(("code", "text", "kind"), TABLE)
def test_reply_table(code: int | None, text: str, kind: Kind) -> None:
    """Each real-world reply is read as the kind its sender meant."""
    assert classify_reply(code, text) is kind


def test_only_lost_or_silent_transactions_are_timeouts() -> None:
    """A reply that never came counts towards the breaker; a relay's own words never do."""
    assert is_timeout(None, "SMTPReadTimeoutError: Timed out waiting for server response")
    assert is_timeout(None, "TimeoutError: ")
    assert not is_timeout(451, "4.4.2 Timeout while talking to the next hop")
    assert not is_timeout(None, "SMTPServerDisconnected: Connection lost")


CONNECT = [
    (
        aiosmtplib.SMTPConnectError("Error connecting"),
        ConnectionRefusedError(111, "refused"),
        Kind.REFUSED,
        "connection refused",
    ),
    (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"), None, Kind.REFUSED,
     "authentication refused (535 5.7.8 bad credentials)"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), None, Kind.REFUSED, "TLS failed"),
    (aiosmtplib.SMTPConnectResponseError(421, "4.7.0 Too many connections"), None, Kind.THROTTLE,
     "421 4.7.0 Too many connections"),
    (aiosmtplib.SMTPConnectResponseError(554, "5.7.1 go away"), None, Kind.REFUSED, "554"),
    (aiosmtplib.SMTPServerDisconnected("Connection lost"), None, Kind.THROTTLE, "closed"),
    (aiosmtplib.SMTPConnectTimeoutError("timed out"), None, Kind.REFUSED, "no answer in time"),
]


@pytest.mark.parametrize(("exc", "cause", "kind", "words"), CONNECT)
def test_connect_failures(
    exc: BaseException, cause: BaseException | None, kind: Kind, words: str
) -> None:
    """A session that cannot be opened says why in a few words; only a busy relay is a limit."""
    exc.__cause__ = cause
    got_kind, got_words = connect_failure(exc)
    assert got_kind is kind and words in got_words


def test_hints_name_what_to_check() -> None:
    """The last line of a run that cannot connect says what to look at."""
    assert hint("connection refused") == "is the relay running?"
    assert "password_env" in hint("authentication refused (535 no)")
    assert "ca_file" in hint("TLS failed (CERTIFICATE_VERIFY_FAILED)")
