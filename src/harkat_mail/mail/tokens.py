"""Unsubscribe tokens: which list, which address, which language, opaque without the secret.

A token is ``"2" + base64url(AES-SIV(list_id \\x1f address \\x1f language))``, unpadded. The
AES-256-SIV key is derived from the secret with HKDF-SHA256, never the secret itself. SIV is
deterministic on purpose: a member's link is the same on every run (stable links, nothing to
store, and render stays fast), and its 16-byte synthetic IV doubles as the tag, so a forged or
altered token does not decrypt. Proxy and access logs in front of the endpoint record only
noise, not member addresses. What SIV does reveal: equal tokens mean the same member, and the
length follows the address's length.

Version 1 tokens (``<payload>.<mac>``: the payload in clear base64url, HMAC-SHA256 truncated to
128 bits) were sent by the previous release. They still verify, because a link already in an
inbox must keep working (CASL, RFC 8058); none are made any more.
The secret is not logged or written down, and ``repr`` never shows it.

Test tokens (``"T" + base64url(AES-SIV(...))``) go in ``send --test-to`` messages. They name
the tester, not a member, and are sealed with other associated data, so a test token never
opens as a member's token: the endpoint answers "this was a test" and records nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError
from ..models import DEFAULT_SECRET_ENV

MIN_SECRET_LENGTH = 16
MAX_TOKEN = 2048  # characters; far above any real token, bounds the work a request can cause
# Dry runs and the local capture relay work without a secret; their links verify nowhere else.
LOCAL_SECRET = b"harkat-mail local preview only"
VERSION = "2"  # the first character of every v2 token; a v1 token is told apart by its '.'
_SEP = "\x1f"
_V1_CONTEXT = b"harkat-mail unsubscribe v1\0"
# HKDF info: this key is for v2 token encryption only; another use derives with another info.
_V2_KEY_INFO = b"harkat-mail unsubscribe token v2: AES-256-SIV key"
_V2_AD = [b"harkat-mail unsubscribe v2"]  # binds a ciphertext to this purpose and version
TEST_VERSION = "T"  # the first character of a test message's token
_TEST_AD = [b"harkat-mail unsubscribe v2 test message"]  # never opens as a member's token
_TAG = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class BadToken(ValueError):
    """The token is malformed, altered, or was not made with this key."""


@dataclass(frozen=True)
class Subscription:
    """What a valid token names."""

    list_id: str
    address: str
    language: str
    test: bool = False  # from a test message: the address is the tester's; record nothing


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict: the base64url alphabet only, spelt as ``_b64`` spells it (no second spelling)."""
    if not _B64URL.fullmatch(text):
        raise BadToken("malformed token")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("malformed token") from None
    if _b64(data) != text:  # unused low bits set: an altered token, refused like any other
        raise BadToken("malformed token")
    return data


def _v2_key(secret: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_V2_KEY_INFO)
    return hkdf.derive(secret)


class Signer:
    """Makes opaque (v2) tokens and checks v2 and v1 tokens, all with one secret."""

    def __init__(self, key: bytes) -> None:
        self._key = key  # v1 HMAC key: the secret itself, as the previous release used it
        self._siv = AESSIV(_v2_key(key))

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return "Signer(<key hidden>)"

    def _v1_mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _V1_CONTEXT + payload, hashlib.sha256).digest()[:16]

    def token(self, list_id: str, address: str, language: str) -> str:
        """The opaque token for one recipient of one list (the same on every call)."""
        if _SEP in list_id or _SEP in address or _SEP in language:
            raise ValueError("list id, address and language must not contain U+001F")
        plain = _SEP.join((list_id, address, language)).encode("utf-8")
        return VERSION + _b64(self._siv.encrypt(plain, _V2_AD))

    def test_token(self, list_id: str, tester: str, language: str) -> str:
        """The token of a test message sent to ``tester``: answered, never recorded."""
        if _SEP in list_id or _SEP in tester or _SEP in language:
            raise ValueError("list id, address and language must not contain U+001F")
        plain = _SEP.join((list_id, tester, language)).encode("utf-8")
        return TEST_VERSION + _b64(self._siv.encrypt(plain, _TEST_AD))

    def verify(self, token: str) -> Subscription:
        """The subscription a token names; ``BadToken`` if it was not made with this key."""
        token = token.strip()
        if len(token) > MAX_TOKEN:
            raise BadToken("malformed token")
        test = False
        if "." in token:
            plain = self._open_v1(token)
        elif token.startswith(VERSION):
            plain = self._open_v2(token[len(VERSION) :])
        elif token.startswith(TEST_VERSION):
            plain, test = self._open_v2(token[len(TEST_VERSION) :], _TEST_AD), True
        else:
            raise BadToken("malformed token")
        try:
            list_id, address, language = plain.decode("utf-8").split(_SEP)
        except (UnicodeDecodeError, ValueError):
            raise BadToken("malformed token") from None
        return Subscription(list_id, address, language, test)

    def _open_v2(self, body: str, ad: list[bytes] = _V2_AD) -> bytes:
        data = _unb64(body)
        if len(data) <= _TAG:
            raise BadToken("malformed token")
        try:
            return self._siv.decrypt(data, ad)
        except InvalidTag:
            raise BadToken("token does not authenticate") from None

    def _open_v1(self, token: str) -> bytes:
        head, _, tail = token.partition(".")
        payload, mac = _unb64(head), _unb64(tail)
        if not hmac.compare_digest(mac, self._v1_mac(payload)):
            raise BadToken("signature does not match")
        return payload


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
