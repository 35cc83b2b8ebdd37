"""The ``bounces:`` key: the envelope sender, VERP, and the mailbox bounces are read from."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..models import BounceConfig
from .yamldoc import Reader

_KEYS = {
    "address",
    "verp",
    "mailbox",
    "processed",
    "password_env",
    "ca_file",
    "soft_threshold",
    "block_alert",
}
_AT = ("bounces",)


def _mailbox(r: Reader, value: object) -> str:
    """A local path (resolved against the YAML's folder) or an ``imaps://``/``imap://`` URL."""
    text = r.text(value, (*_AT, "mailbox"))
    scheme, sep, _ = text.partition("://")
    if not sep:
        return str(r.path(text, (*_AT, "mailbox")))
    if scheme.lower() not in ("imap", "imaps"):
        raise r.doc.error((*_AT, "mailbox"), "expected a path, or an imaps:// or imap:// URL")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        raise r.doc.error((*_AT, "mailbox"), f"not a valid URL ({exc})") from None
    if parts.password is not None:
        raise r.doc.error(
            (*_AT, "mailbox"), "never put the password in the URL; use bounces.password_env"
        )
    if not parts.hostname or not parts.username:
        raise r.doc.error((*_AT, "mailbox"), "expected imaps://user@host[:port][/folder]")
    return text


def _block_alert(r: Reader, value: object) -> tuple[float, bool]:
    """A count of blocks (``20``) or a share of the messages sent (``"2%"``)."""
    at = (*_AT, "block_alert")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share <= 100:
            raise r.doc.error(at, f"expected a percentage from 0 to 100, got {value!r}")
        return share, True
    return float(r.integer(value, at, 1, 10**7)), False


def bounce_config(r: Reader, value: object) -> BounceConfig | None:
    """The ``bounces:`` map, or None when the campaign has none (bounces go to From)."""
    if value is None:
        return None
    spec = r.map(value, _AT, _KEYS)
    if "address" not in spec:
        raise r.doc.error(_AT, "missing key 'address' (where bounces go, e.g. bounces@example.org)")
    if "password" in spec:
        raise r.doc.error((*_AT, "password"), "never write a password here; use password_env")
    address = r.address(spec["address"], (*_AT, "address"), bare=True)
    verp = spec.get("verp", False)
    if not isinstance(verp, bool):
        raise r.doc.error((*_AT, "verp"), f"expected true or false, got {verp!r}")
    if verp and "+" in address.rpartition("@")[0]:
        raise r.doc.error(
            (*_AT, "address"), "with verp: true the address must have no '+' (VERP adds +TOKEN)"
        )
    processed = r.text(spec.get("processed", "harkat-processed"), (*_AT, "processed"))
    if any(c in processed for c in "/\\") or processed.startswith("."):
        raise r.doc.error(
            (*_AT, "processed"), "expected a folder name (no '/', '\\' or leading '.')"
        )
    alert, percent = _block_alert(r, spec.get("block_alert", 10))
    password_env = spec.get("password_env")
    return BounceConfig(
        address=address,
        verp=verp,
        mailbox=_mailbox(r, spec["mailbox"]) if "mailbox" in spec else "",
        processed=processed,
        password_env=r.text(password_env, (*_AT, "password_env")) if password_env else None,
        ca_file=r.path(spec["ca_file"], (*_AT, "ca_file")) if "ca_file" in spec else None,
        soft_threshold=r.integer(spec.get("soft_threshold", 3), (*_AT, "soft_threshold"), 1, 365),
        block_alert=alert,
        block_alert_percent=percent,
    )
