"""Unsubscribe tokens: who and which list, signed with a secret from the environment.

A token is ``<payload>.<mac>``, both base64url: the payload holds the list id, the address and
the member's language; the mac is HMAC-SHA256 over it (128 bits kept). Without the secret
nobody can make a token for another address, so links can be neither forged nor enumerated.
The secret never leaves this module's callers' memory: it is not logged or written down.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from ..errors import ConfigError
from ..models import DEFAULT_SECRET_ENV

MIN_SECRET_LENGTH = 16
# Dry runs and the local capture relay work without a secret; their links verify nowhere else.
LOCAL_SECRET = b"harkat-mail local preview only"
_CONTEXT = b"harkat-mail unsubscribe v1\0"


class BadToken(ValueError):
    """The token is malformed or its signature does not match."""


@dataclass(frozen=True)
class Subscription:
    """What a valid token names."""

    list_id: str
    address: str
    language: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Makes and checks tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return "Signer(<key hidden>)"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload, hashlib.sha256).digest()[:16]

    def token(self, list_id: str, address: str, language: str) -> str:
        """The token for one recipient of one list."""
        payload = "\x1f".join((list_id, address, language)).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> Subscription:
        """The subscription a token names; ``BadToken`` if it was not made with this key."""
        head, dot, tail = token.strip().partition(".")
        if not dot or not head or not tail or len(token) > 2048:
            raise BadToken("malformed token")
        try:
            payload, mac = _unb64(head), _unb64(tail)
        except (binascii.Error, ValueError):
            raise BadToken("malformed token") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise BadToken("signature does not match")
        try:
            list_id, address, language = payload.decode("utf-8").split("\x1f")
        except (UnicodeDecodeError, ValueError):
            raise BadToken("malformed token") from None
        return Subscription(list_id, address, language)


def secret_is_set(name: str | None) -> bool:
    """True when environment variable ``name`` holds a secret (else the local key is used)."""
    return bool(os.environ.get(name, "") if name else "")


def secret_from_env(name: str | None, required: bool) -> bytes:
    """The key from environment variable ``name``; the local key when not required and unset."""
    value = os.environ.get(name, "") if name else ""
    if not value:
        if required:
            raise ConfigError(
                f"unsubscribe.secret_env: environment variable {name or DEFAULT_SECRET_ENV} is "
                "not set; real sends need the secret the unsubscribe server checks links with"
            )
        return LOCAL_SECRET
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"environment variable {name}: the unsubscribe secret is shorter than "
            f"{MIN_SECRET_LENGTH} characters"
        )
    return value.encode("utf-8")
