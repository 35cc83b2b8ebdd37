"""``validate --check-relay``: one session (EHLO, STARTTLS, AUTH, QUIT) and what the relay offers.

The session is opened exactly as a send opens one (``Session.ensure``), so a relay that passes
here is one a send can use. Any failure becomes one line naming the relay and the cause.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from ..errors import RelayUnavailable
from ..models import SmtpConfig
from .session import Session, password_for

# The extensions worth knowing before a big send, in the order they are shown.
NOTABLE = ("SIZE", "PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN")


@dataclass(frozen=True)
class RelayOffer:
    """What one relay said about itself in a session that went all the way to AUTH."""

    relay: str  # ``describe()`` of the relay
    greeting: str  # the EHLO reply's first line (the relay's name)
    extensions: tuple[str, ...]  # every EHLO keyword (after STARTTLS), upper case
    size: int | None  # the SIZE limit in bytes, when the relay states one
    auth: tuple[str, ...]  # AUTH mechanisms offered
    tls: str  # e.g. "TLSv1.3 (TLS_AES_256_GCM_SHA384)", or "none"
    authenticated: bool

    def lines(self) -> list[str]:
        """The offer as the CLI prints it."""
        notable = [e for e in NOTABLE if e in self.extensions]
        others = [e for e in self.extensions if e not in NOTABLE and e not in ("AUTH", "STARTTLS")]
        size = f"SIZE {self.size / 1e6:.1f} MB" if self.size else None
        shown = [size if e == "SIZE" and size else e for e in notable]
        return [
            f"relay {self.relay}: {self.greeting}",
            f"  TLS: {self.tls}",
            f"  extensions: {', '.join(shown) or 'none'}"
            + (f" (also {', '.join(others)})" if others else ""),
            f"  AUTH: {', '.join(self.auth) or 'none offered'}"
            + ("; logged in" if self.authenticated else ""),
        ]


def failure(config: SmtpConfig, exc: BaseException) -> str:
    """One line: which relay, what went wrong, and what to look at."""
    where = f"{config.host}:{config.port}"
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Errno 111" in text:
        return f"cannot connect to {where}: connection refused; is the relay running?"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"cannot connect to {where}: no such host; check smtp.host"
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError | TimeoutError | asyncio.TimeoutError):
        return f"cannot connect to {where}: no answer within {config.timeout:g} s"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return f"{where} refused the login: {exc.code} {exc.message}; check username and password"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "CERTIFICATE_VERIFY" in text:
        return f"{where}: TLS failed ({text.strip()[:160]}); check smtp.tls and smtp.ca_file"
    if "STARTTLS" in text:
        return f"{where} does not offer STARTTLS; set smtp.tls to tls (port 465) or ask its admin"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{where} refused the session: {exc.code} {exc.message}"
    return f"cannot open a session with {where}: {type(exc).__name__}: {text.strip()[:160]}"


async def probe(config: SmtpConfig) -> RelayOffer:
    """Open one session as a send would, note what the relay offers, QUIT.

    Raises ``RelayUnavailable`` (one line, see ``failure``) when the session cannot be opened,
    TLS fails or the login is refused; ``ConfigError`` when the password is not set.
    """
    session = Session(config, password_for(config))
    try:
        client = await session.ensure()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        await session.drop(polite=False)
        raise RelayUnavailable(failure(config, exc)) from None
    try:
        extensions = tuple(name.upper() for name in client.esmtp_extensions)
        size_text = client.esmtp_extensions.get("size", "")
        ssl_object = client.get_transport_info("ssl_object")
        cipher = ssl_object.cipher() if isinstance(ssl_object, ssl.SSLObject) else None
        tls = f"{ssl_object.version()} ({cipher[0]})" if cipher else "none"
        response = client.last_ehlo_response
        greeting = response.message.splitlines()[0] if response else ""
        return RelayOffer(
            relay=config.describe(),
            greeting=greeting,
            extensions=extensions,
            size=int(size_text) if size_text.isdigit() and int(size_text) > 0 else None,
            auth=tuple(m.upper() for m in client.server_auth_methods),
            tls=tls,
            authenticated=session.password is not None or config.auth == "xoauth2",
        )
    finally:
        await session.drop(polite=True)
