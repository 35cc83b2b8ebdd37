"""DKIM signatures (dkimpy) over the headers receivers and one-click unsubscribe rely on.

dkimpy builds, canonicalises and hashes the signature; its RSA step is pure Python (about
12 ms a message, ~80 messages/s). The same RSASSA-PKCS1-v1_5 operation is handed to
OpenSSL through ``cryptography``: it is deterministic, so the bytes are identical (a test
compares them), at about a millisecond.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dkim
import dkim.crypto
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from ..errors import ConfigError
from ..models import DkimConfig

_PURE_SIGN = dkim.crypto.RSASSA_PKCS1_v1_5_sign
_HASHES: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}
_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def openssl_rsa_sign(digest: Any, private_key: Mapping[str, int]) -> bytes:
    """dkimpy's ``RSASSA_PKCS1_v1_5_sign(hash, key)``, computed by OpenSSL."""
    algorithm = _HASHES.get(digest.name)
    if algorithm is None:
        return bytes(_PURE_SIGN(digest, private_key))
    modulus = private_key["modulus"]
    key = _KEYS.get(modulus)
    if key is None:
        public = rsa.RSAPublicNumbers(private_key["publicExponent"], modulus)
        key = rsa.RSAPrivateNumbers(
            p=private_key["prime1"],
            q=private_key["prime2"],
            d=private_key["privateExponent"],
            dmp1=private_key["exponent1"],
            dmq1=private_key["exponent2"],
            iqmp=private_key["coefficient"],
            public_numbers=public,
        ).private_key()
        if len(_KEYS) > 8:
            _KEYS.clear()
        _KEYS[modulus] = key
    return key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


# dkimpy looks the function up in its own namespace at each signature; only replace the one
# it was written with (a future dkimpy that changes it keeps its own).
if getattr(dkim, "RSASSA_PKCS1_v1_5_sign", None) is _PURE_SIGN:
    dkim.RSASSA_PKCS1_v1_5_sign = openssl_rsa_sign

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


def generate_key(path: Path, bits: int = 2048) -> str:
    """Write a new RSA private key to ``path`` (mode 600); return the DNS TXT record value.

    Publish the value at ``<selector>._domainkey.<domain>``; refuses to overwrite a key.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: a key is already there; not overwriting it") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")
