"""``mailto:`` links per RFC 6068: addresses and header values, UTF-8 percent-encoded.

Header values (subject, body, cc) keep only RFC 3986 unreserved characters literal, so the
link survives HTML attributes, plain-text linkifiers and form-style parsers that read ``+``
as a space: a space is ``%20``, a line break ``%0D%0A``, ``&``/``=``/``#``/``%`` are encoded.
Addresses keep ``@`` and the characters RFC 6068 lets stand in an addr-spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote

# RFC 6068 section 2: in an addr-spec, "%", gen-delims other than "@" and ":", and
# "&", ";", "=" must be encoded; some-delims may stay. "," separates addresses, so it goes too.
_LOCAL_SAFE = "!$'()*+:"
_CRLF = "%0D%0A"


def encode_address(address: str) -> str:
    """One addr-spec for the ``to`` part or a ``cc`` value; only its last ``@`` stays literal."""
    local, at, domain = address.rpartition("@")
    if not at:
        return quote(address, safe=_LOCAL_SAFE)
    return f"{quote(local, safe=_LOCAL_SAFE)}@{quote(domain, safe='')}"


@lru_cache(maxsize=4096)  # a letter's lines are the same for most members: encode them once
def encode_value(text: str) -> str:
    """A header value: UTF-8, everything but RFC 3986 unreserved characters percent-encoded."""
    return quote(text, safe="")


def encode_body(text: str) -> str:
    """A body: any line break becomes CRLF (``%0D%0A``), as RFC 6068 section 5 asks."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _CRLF.join(encode_value(line) for line in lines)


def mailto(
    to: Iterable[str] = (),
    *,
    cc: Iterable[str] = (),
    subject: str = "",
    body: str = "",
    headers: Iterable[tuple[str, str]] = (),
) -> str:
    """The link: ``mailto:to1,to2?cc=...&subject=...&body=...`` (empty fields left out)."""
    fields = [("cc", ",".join(encode_address(a) for a in cc))]
    fields += [("subject", encode_value(subject)), ("body", encode_body(body))]
    fields += [(name, encode_value(value)) for name, value in headers]
    query = "&".join(f"{encode_value(name)}={value}" for name, value in fields if value)
    recipients = ",".join(encode_address(a) for a in to)
    return f"mailto:{recipients}" + (f"?{query}" if query else "")

