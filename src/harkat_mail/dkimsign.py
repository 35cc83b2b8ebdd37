"""DKIM signatures (dkimpy) over the headers receivers and one-click unsubscribe rely on."""

from __future__ import annotations

import dkim

from .errors import ConfigError
from .models import DkimConfig

# RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be signed.
SIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
    b"content-language",
)
_PROBE = b"From: a@example.org\r\nSubject: probe\r\n\r\nprobe\r\n"


class DkimSigner:
    """Signs finished messages with the campaign's domain key (relaxed/simple, rsa-sha256)."""

    def __init__(self, config: DkimConfig) -> None:
        self.domain = config.domain.encode("ascii")
        self.selector = config.selector.encode("ascii")
        try:
            self._key = config.key_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{config.key_path}: cannot read the DKIM key ({exc})") from None
        try:  # a bad key fails here, before anything is sent, not on the first message
            self.sign(_PROBE)
        except (dkim.DKIMException, ValueError, IndexError) as exc:
            raise ConfigError(
                f"{config.key_path}: not a usable DKIM private key (PEM RSA): {exc}"
            ) from None

    def __repr__(self) -> str:  # the key stays out of tracebacks
        return f"DkimSigner(d={self.domain.decode()}, s={self.selector.decode()})"

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header in front."""
        header = dkim.sign(
            message,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"simple"),
            include_headers=list(SIGNED),
        )
        return bytes(header) + message
