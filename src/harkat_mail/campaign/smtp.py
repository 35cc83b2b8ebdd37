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


def smtp_config(r: Reader, value: object) -> SmtpConfig:
    """The ``smtp:`` value: ``local`` (the capture relay) or a map of relay settings."""
    if value is None or value == "local":
        return SmtpConfig(local=True)
    spec = r.map(value, ("smtp",), _SMTP_KEYS)
    if "host" not in spec:
        raise r.doc.error(("smtp",), "missing key 'host' (or write smtp: local)")
    tls = r.choice(spec.get("tls", "starttls"), ("smtp", "tls"), ("starttls", "tls", "none"))
    default_port = {"starttls": 587, "tls": 465, "none": 25}[tls]
    password_env = spec.get("password_env")
    if "password" in spec:
        raise r.doc.error(("smtp", "password"), "never write a password here; use password_env")
    auth = r.choice(spec.get("auth", "password"), ("smtp", "auth"), ("password", "xoauth2"))
    token_env, token_command = _token_source(r, spec, auth)
    return SmtpConfig(
        local=False,
        auth="xoauth2" if auth == "xoauth2" else "password",
        token_env=token_env,
        token_command=token_command,
        host=r.text(spec["host"], ("smtp", "host")),
        port=r.integer(spec.get("port", default_port), ("smtp", "port"), 1, 65535),
        tls="tls" if tls == "tls" else "none" if tls == "none" else "starttls",
        username=r.text(spec["username"], ("smtp", "username")) if "username" in spec else None,
        password_env=r.text(password_env, ("smtp", "password_env")) if password_env else None,
        connections=r.integer(spec.get("connections", 4), ("smtp", "connections"), 1, 100),
        rate=r.number(spec["rate"], ("smtp", "rate")) if "rate" in spec else None,
        per_hour=r.integer(spec["per_hour"], ("smtp", "per_hour"), 1, 10**7)
        if "per_hour" in spec
        else None,
        per_day=r.integer(spec["per_day"], ("smtp", "per_day"), 1, 10**8)
        if "per_day" in spec
        else None,
        ca_file=r.path(spec["ca_file"], ("smtp", "ca_file")) if "ca_file" in spec else None,
        timeout=r.number(spec.get("timeout", 30), ("smtp", "timeout")),
    )


def _token_source(
    r: Reader, spec: dict[str, Any], auth: str
) -> tuple[str | None, tuple[str, ...]]:
    """``token_env`` or ``token_command`` (an argv list; a string is split, never a shell)."""
    if auth != "xoauth2":
        for key in ("token_env", "token_command"):
            if key in spec:
                raise r.doc.error(("smtp", key), "only used with auth: xoauth2")
        return None, ()
    if "password_env" in spec:
        raise r.doc.error(("smtp", "password_env"), "auth: xoauth2 uses token_env or token_command")
    if "username" not in spec:
        raise r.doc.error(("smtp", "auth"), "xoauth2 needs username (the mailbox address)")
    if ("token_env" in spec) == ("token_command" in spec):
        raise r.doc.error(
            ("smtp", "auth"), "xoauth2 needs exactly one of token_env or token_command"
        )
    if "token_env" in spec:
        return r.text(spec["token_env"], ("smtp", "token_env")), ()
    at = ("smtp", "token_command")
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
