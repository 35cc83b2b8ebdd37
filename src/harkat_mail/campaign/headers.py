"""Header values from the campaign YAML: one mailbox per address, an ASCII List-Id, one URL.

Each goes into every message's headers, so each is checked strictly here instead of being
repaired (or misread) at send time. A check returns the value to store or raises
``ValueError`` with the reason, which the caller turns into a one-line error naming the key.
"""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import AddressHeader, BaseHeader
from email.utils import parseaddr
from urllib.parse import urlsplit

import idna

MAX_FIELD = 512  # longer than any real "Name <address>"; bounds the header parser's work
MAX_NAME = 200  # mail/message.py's MAX_NAME: a longer name would be cut at send time
# Domains no mail is sent from; lists/ refuses them for members too (email-validator's list).
_SPECIAL_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# RFC 2919 allows any dot-atom with a dot; this is the plain part of it that names use.
_LIST_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
_MAILTO_LOCAL = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*")  # safe inside a URI
# email.utils.formataddr's rules for when a display name needs quotes, and what to escape.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES = re.compile(r'[\\"]')
# RFC 3986 unreserved, reserved and "%", less what could end or split a List-Unsubscribe
# entry or a quoted attribute (",", "'"), and "#" (the token appended after it would be a
# fragment, which the browser never sends).
_URL_CHAR = re.compile(r"[A-Za-z0-9._~:/?\[\]@!$&()*+;=%-]")
_DNS = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*"
)
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _squeeze(text: str) -> str:
    """Text without spaces, quotes, backslashes and angle brackets, to see nothing was lost."""
    return "".join(c for c in text if not c.isspace() and c not in '"\\<>')


def _parse(text: str) -> tuple[str, str, str]:
    """(display name, local part, domain) of the one mailbox in ``text``, per the email package."""
    try:
        header = policy.default.header_factory("reply-to", text)
    except Exception as exc:  # the parser's own bugs on odd input must not become a traceback
        raise ValueError(f"not an email address: {text!r} ({exc})") from None
    assert isinstance(header, AddressHeader) and isinstance(header, BaseHeader)
    for group in header.groups:
        if group.display_name is not None:
            raise ValueError(
                f"{text!r} is not one address: the ':' makes {group.display_name!r} a group "
                'name; put a name with a colon in double quotes, e.g. "CUPW: National Office" '
                "<national@cupw.example.org>"
            )
    found = header.addresses
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one address, found {len(found)} in {text!r} (a ',' separates "
            "addresses; put a name with a comma in double quotes)"
        )
    for defect in header.defects:
        if "non-ASCII" in str(defect):
            raise ValueError(
                f"{text!r}: the part before '@' is not ASCII, and international addresses "
                "(SMTPUTF8) are not used; give an ASCII address"
            )
        if "period in 'phrase'" not in str(defect):  # "J. Smith" is old but harmless
            raise ValueError(f"not one valid address: {text!r} ({defect})")
    address = found[0]
    return address.display_name, address.username, address.domain


def _ascii_domain(domain: str, text: str) -> str:
    """The domain in ASCII: IDNA 2008 with UTS 46 mapping, as email-validator does for members."""
    if domain.startswith("["):
        raise ValueError(f"{text!r}: give a domain name after the '@', not an IP address")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{text!r}: the part after '@' is not a valid domain ({exc})") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253 or not all(map(_LABEL.fullmatch, labels)):
        raise ValueError(f"{text!r}: expected a domain such as cupw.example.org after the '@'")
    if labels[-1] in _SPECIAL_TLDS or not _TLD.fullmatch(labels[-1]):
        raise ValueError(f"{text!r}: no mail can be sent from a .{labels[-1]} domain")
    return ascii_domain


def mailbox(text: str, bare: bool = False) -> str:
    """The one mailbox in ``text`` as ``Name <local@domain>`` that parseaddr reads back exactly.

    A non-ASCII domain becomes its IDNA (xn--) form; a non-ASCII or quoted local part, a
    group (``Name: addr``), a second address, a comment or an encoded word is refused.
    ``bare``: only the address is allowed (it goes into a ``mailto:`` URI).
    """
    if len(text) > MAX_FIELD:
        raise ValueError(f"longer than {MAX_FIELD} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("contains a control character")
    if "=?" in text:
        raise ValueError("write the name as plain text, not an encoded word (=?...?=)")
    name, local, domain = _parse(text)
    if not local or not domain:
        raise ValueError(f"not an email address: {text!r} (expected Name <local@domain>)")
    if not local.isascii():
        raise ValueError(f"{text!r}: the part before '@' is not ASCII; give an ASCII address")
    if not _DOT_ATOM.fullmatch(local):
        raise ValueError(f"{text!r}: the part before '@' must be plain (no quotes or spaces)")
    if _squeeze(text) != _squeeze(f"{name}{local}@{domain}"):
        # a comment "(...)" or a route "@a,@b:" that the header would silently drop
        raise ValueError(f"{text!r} has text that would be dropped; write Name <local@domain>")
    if len(name) > MAX_NAME:
        raise ValueError(f"the name is longer than {MAX_NAME} characters")
    addr = f"{local}@{_ascii_domain(domain, text)}"
    if len(local) > 64 or len(addr) > 254:
        raise ValueError(f"{text!r}: longer than an address can be (64 before '@', 254 in all)")
    if bare:
        if name:
            raise ValueError(f"write only the address, without a name: {addr!r}")
        if not _MAILTO_LOCAL.fullmatch(local):
            raise ValueError(f"{addr!r}: use letters, digits and . _ + = - before the '@'")
        return addr
    if not name:
        return addr
    quoted = _ESCAPES.sub(r"\\\g<0>", name)
    value = f'"{quoted}" <{addr}>' if _SPECIALS.search(name) else f"{name} <{addr}>"
    if parseaddr(value) != (name, addr):  # what mail/ reads back must be what was checked
        raise ValueError(f"the name in {text!r} cannot be written so it reads back the same")
    return value


def list_id(text: str) -> str:
    """An RFC 2919 list id: dot-separated ASCII words, at least two, e.g. name.example.org."""
    if not text.isascii():
        raise ValueError(
            f"{text!r} is not ASCII (RFC 2919); write a non-ASCII domain in its xn-- form"
        )
    if len(text) > 255 or not _LIST_ID.fullmatch(text):
        raise ValueError(
            f"expected an id such as sept2018.cupw.example.org (RFC 2919: letters, digits and "
            f"- _ in dot-separated parts), got {text!r}"
        )
    return text


def https_url(text: str) -> str:
    """An https URL with a host and only RFC 3986 characters: one List-Unsubscribe entry."""
    if len(text) > 2000:
        raise ValueError("longer than 2,000 characters")
    bad = next((c for c in text if not _URL_CHAR.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(
            f"{bad!r} is not allowed in the address (no spaces, quotes, commas, <, > or #; "
            f"percent-encode other characters), got {text!r}"
        )
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise ValueError(f"a '%' must start a %XX escape, got {text!r}")
    if not text.startswith("https://"):
        raise ValueError(f"expected an https:// address, got {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port  # a ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a valid address: {text!r} ({exc})") from None
    if port == 0:
        raise ValueError(f"port 0 is not a port, got {text!r}")
    if "@" in parts.netloc:
        raise ValueError(f"no user name or password in the address, got {text!r}")
    host = parts.hostname or ""
    if not (_HOST.fullmatch(host) or (parts.netloc.startswith("[") and host)):
        raise ValueError(f"expected a host name after https://, got {text!r}")
    return text


def dns_name(text: str, what: str) -> str:
    """A DKIM domain or selector: ASCII LDH labels (they go into the DKIM-Signature header)."""
    lowered = text.lower()
    if not lowered.isascii() or len(lowered) > 253 or not _DNS.fullmatch(lowered):
        raise ValueError(
            f"expected a {what} of ASCII letters, digits, '-' and '_' in dot-separated parts "
            f"(a non-ASCII domain in its xn-- form), got {text!r}"
        )
    return lowered
