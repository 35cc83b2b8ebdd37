"""The relay settings: the ``smtp:`` key of a campaign, or an ``--smtp`` URL."""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError
from ..models import SmtpConfig
from .yamldoc import Reader

_SMTP_KEYS = {
    "per_hour",
    "per_day",
    "ca_file",
    "host",
    "port",
    "tls",
    "username",
    "password_env",
    "connections",
    "rate",
    "timeout",
    "auth",
    "token_env",
    "token_command",
}


def smtp_relays(r: Reader, value: object) -> tuple[SmtpConfig, ...]:
    """The ``smtp:`` value as a pool: one relay, or each relay of a list (``weight`` each)."""
    if not isinstance(value, list):
        return (smtp_config(r, value),)
    if not value:
        raise r.doc.error(("smtp",), "the list of relays is empty")
    relays = tuple(_relay(r, item, ("smtp", str(i)), pool=True) for i, item in enumerate(value))
    seen: set[str] = set()
    for i, relay in enumerate(relays):
        if relay.label in seen:
            raise r.doc.error(("smtp", str(i), "host"), f"{relay.label} is in the list twice")
        seen.add(relay.label)
    return relays


def smtp_config(r: Reader, value: object) -> SmtpConfig:
    """The ``smtp:`` value: ``local`` (the capture relay) or a map of relay settings."""
    if value is None or value == "local":
        return SmtpConfig(local=True)
    if not isinstance(value, dict):
        got = repr(value) if isinstance(value, str) else type(value).__name__
        raise r.doc.error(
            ("smtp",),
            f"expected local, a map of relay settings or a list of them, got {got} (the relay "
            "that sends); write `smtp: local` or `smtp: {host: smtp.union.example.org}`",
        )
    return _relay(r, value, ("smtp",), pool=False)


def _relay(r: Reader, value: object, at: tuple[str, ...], pool: bool) -> SmtpConfig:
    """One relay's map; in a pool each needs a host (no ``local``) and may carry ``weight``."""
    if pool and value == "local":
        raise r.doc.error(at, "a pool of relays cannot include the local capture relay")
    spec = r.map(value, at, _SMTP_KEYS | {"weight"} if pool else _SMTP_KEYS)
    if "host" not in spec:
        raise r.doc.error(at, "missing key 'host'" + ("" if pool else " (or write smtp: local)"))
    tls = r.choice(spec.get("tls", "starttls"), (*at, "tls"), ("starttls", "tls", "none"))
    default_port = {"starttls": 587, "tls": 465, "none": 25}[tls]
    password_env = spec.get("password_env")
    if "password" in spec:
        raise r.doc.error((*at, "password"), "never write a password here; use password_env")
    auth = r.choice(spec.get("auth", "password"), (*at, "auth"), ("password", "xoauth2"))
    token_env, token_command = _token_source(r, spec, auth, at)
    return SmtpConfig(
        local=False,
        auth="xoauth2" if auth == "xoauth2" else "password",
        token_env=token_env,
        token_command=token_command,
        host=r.text(spec["host"], (*at, "host")),
        port=r.integer(spec.get("port", default_port), (*at, "port"), 1, 65535),
        tls="tls" if tls == "tls" else "none" if tls == "none" else "starttls",
        username=r.text(spec["username"], (*at, "username")) if "username" in spec else None,
        password_env=r.text(password_env, (*at, "password_env")) if password_env else None,
        connections=r.integer(spec.get("connections", 4), (*at, "connections"), 1, 100),
        rate=r.number(spec["rate"], (*at, "rate")) if "rate" in spec else None,
        per_hour=r.integer(spec["per_hour"], (*at, "per_hour"), 1, 10**7)
        if "per_hour" in spec
        else None,
        per_day=r.integer(spec["per_day"], (*at, "per_day"), 1, 10**8)
        if "per_day" in spec
        else None,
        ca_file=r.path(spec["ca_file"], (*at, "ca_file")) if "ca_file" in spec else None,
        timeout=r.number(spec.get("timeout", 30), (*at, "timeout")),
        weight=r.number(spec.get("weight", 1), (*at, "weight")),
    )


def _token_source(
    r: Reader, spec: dict[str, Any], auth: str, at: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """``token_env`` or ``token_command`` (an argv list; a string is split, never a shell)."""
    if auth != "xoauth2":
        for key in ("token_env", "token_command"):
            if key in spec:
                raise r.doc.error((*at, key), "only used with auth: xoauth2")
        return None, ()
    if "password_env" in spec:
        raise r.doc.error((*at, "password_env"), "auth: xoauth2 uses token_env or token_command")
    if "username" not in spec:
        raise r.doc.error((*at, "auth"), "xoauth2 needs username (the mailbox address)")
    if ("token_env" in spec) == ("token_command" in spec):
        raise r.doc.error(
            (*at, "auth"), "xoauth2 needs exactly one of token_env or token_command"
        )
    if "token_env" in spec:
        return r.text(spec["token_env"], (*at, "token_env")), ()
    at = (*at, "token_command")
    raw = spec["token_command"]
    if isinstance(raw, str):
        argv = shlex.split(raw)
    elif isinstance(raw, list):
        argv = [r.text(word, at) for word in raw]
    else:
        raise r.doc.error(at, "expected a command: a list like [program, argument, ...]")
    if not argv or not argv[0]:
        raise r.doc.error(at, "is empty; name the program that prints the access token")
    return None, tuple(argv)


def parse_smtp_url(url: str) -> SmtpConfig:
    """``smtp://[user@]host[:port][?tls=starttls|none]`` or ``smtps://host[:port]`` -> config."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"--smtp {url}: expected smtp://host[:port] or smtps://host[:port]")
    if parts.password:
        raise ConfigError("--smtp: never put a password in the URL; set password_env in the YAML")
    query = parse_qs(parts.query)
    unknown = set(query) - {"tls", "password_env", "connections"}
    if unknown:
        raise ConfigError(f"--smtp {url}: unknown parameter {sorted(unknown)[0]!r}")
    # Plain SMTP only to loopback unless asked for; anywhere else STARTTLS is the default.
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    default_tls = "none" if loopback else "starttls"
    tls = "tls" if parts.scheme == "smtps" else query.get("tls", [default_tls])[0]
    if tls not in ("starttls", "tls", "none"):
        raise ConfigError(f"--smtp {url}: tls must be starttls, tls or none")
    try:
        port = parts.port or {"starttls": 587, "tls": 465, "none": 25}[tls]
        connections = int(query.get("connections", ["4"])[0])
    except ValueError as exc:
        raise ConfigError(f"--smtp {url}: {exc}") from None
    return SmtpConfig(
        local=False,
        host=parts.hostname,
        port=port,
        tls=tls,  # type: ignore[arg-type]
        username=parts.username,
        password_env=query.get("password_env", [None])[0],
        connections=max(1, connections),
    )
