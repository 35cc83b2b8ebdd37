"""VERP return paths: ``bounces+TOKEN@domain`` names the campaign and member a bounce is for.

The TOKEN is 32 base32 characters (lower case: some relays lower-case local parts, and base32
has no case to lose) for 20 bytes: a 4-byte campaign tag, an 8-byte member tag and an 8-byte
HMAC-SHA256 over both. Both tags are keyed hashes, so the member's address is not in the
token and cannot be recovered from it without the key; the member is found by computing the
tag of each member of the campaign. A token altered in any character fails its MAC and is
ignored. The key is derived with HKDF from the unsubscribe secret (another ``info`` than the
unsubscribe tokens' key), so there is no second secret to manage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"harkat-mail VERP return path v1: HMAC-SHA256 key"
_LEN = 32  # characters of a token: 20 bytes in base32, no padding
_MAC = 8
MAX_SCAN = 1 << 20  # bytes of a report searched for a token: the headers are near the top


@dataclass(frozen=True)
class VerpToken:
    """What a valid token names: tags to compare with ``campaign_tag``/``member_tag``."""

    campaign: bytes
    member: bytes


class Verp:
    """Makes and checks the VERP return paths of one bounce address."""

    def __init__(self, address: str, secret: bytes) -> None:
        self.local, _, self.domain = address.rpartition("@")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
        self._key = hkdf.derive(secret)
        local, domain = re.escape(self.local.encode()), re.escape(self.domain.encode())
        self._pattern = re.compile(local + rb"\+([A-Za-z2-7]{32})@" + domain, re.IGNORECASE)

    def __repr__(self) -> str:  # never show the key
        return f"Verp({self.local}@{self.domain}, <key hidden>)"

    def _mac(self, what: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, what + b"\0" + data, hashlib.sha256).digest()

    def campaign_tag(self, campaign: str) -> bytes:
        """4 bytes naming the campaign."""
        return self._mac(b"campaign", campaign.encode())[:4]

    def member_tag(self, campaign: str, key: str) -> bytes:
        """8 bytes naming one member of one campaign."""
        return self._mac(b"member", f"{campaign}\0{key}".encode())[:8]

    def token(self, campaign: str, key: str) -> str:
        """The token for one member of one campaign (the same on every call)."""
        body = self.campaign_tag(campaign) + self.member_tag(campaign, key)
        raw = body + self._mac(b"verp", body)[:_MAC]
        return base64.b32encode(raw).decode("ascii").lower()

    def address(self, campaign: str, key: str) -> str:
        """The envelope sender for one member: ``local+TOKEN@domain``."""
        return f"{self.local}+{self.token(campaign, key)}@{self.domain}"

    def verify(self, token: str) -> VerpToken | None:
        """The tags a token carries; None for a malformed, altered or foreign token."""
        token = token.strip()
        if len(token) != _LEN:
            return None
        try:
            raw = base64.b32decode(token.upper())
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:-_MAC], raw[-_MAC:]
        if not hmac.compare_digest(mac, self._mac(b"verp", body)[:_MAC]):
            return None
        return VerpToken(campaign=body[:4], member=body[4:])

    def scan(self, data: bytes) -> VerpToken | None:
        """The first valid token anywhere in a message's bytes: a report's returned headers
        carry the original envelope sender (Return-Path) even when its own To was rewritten."""
        for found in self._pattern.finditer(data[:MAX_SCAN]):
            token = self.verify(found.group(1).decode("ascii"))
            if token is not None:
                return token
        return None

    def find(self, addresses: Iterable[str]) -> VerpToken | None:
        """The first valid token among addresses like ``local+TOKEN@domain`` (any case)."""
        prefix = f"{self.local}+".lower()
        for address in addresses:
            local, _, domain = address.strip().strip("<>").rpartition("@")
            local = local.lower()
            if domain.lower() != self.domain.lower() or not local.startswith(prefix):
                continue
            found = self.verify(local[len(prefix) :])
            if found is not None:
                return found
        return None
