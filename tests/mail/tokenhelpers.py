"""Token test helpers: the previous release's algorithm (v1), and base64 spellings of a value."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def v1_token(secret: bytes, list_id: str, address: str, language: str) -> str:
    """The previous release's ``<payload>.<mac>``: payload in clear base64url, HMAC-SHA256/128."""
    payload = "\x1f".join((list_id, address, language)).encode("utf-8")
    mac = hmac.new(secret, b"harkat-mail unsubscribe v1\0" + payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac[:16])}"


def base64_forms(text: str) -> list[str]:
    """``text``'s base64url spellings at the three byte offsets it could sit at in a payload."""
    data = text.encode("utf-8")
    forms = []
    for pad in range(3):
        encoded = base64.urlsafe_b64encode(b"\0" * pad + data).decode()
        # Only the characters made of ``text``'s bits alone (6 bits each, after the padding).
        forms.append(encoded[math.ceil(8 * pad / 6) : 8 * (pad + len(data)) // 6])
    return forms
