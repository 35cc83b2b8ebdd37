"""Reaching the PostgreSQL send log: the URL's rules, libpq settings, errors as one line.

Credentials come only through libpq's own means: ``PGPASSWORD``, a service file
(``PGSERVICEFILE`` / ``PGSERVICE``) or ``~/.pgpass`` (``PGPASSFILE``), or a client
certificate. A URL that carries a password is refused: it would end up in shell history, in
``ps`` output, in campaign YAML and in every error message that names the log. Everything else
in the URL reaches libpq untouched, ``sslmode`` (``require``, ``verify-full``...),
``sslrootcert`` and ``host=/run/postgresql`` included; only settings the URL leaves out get
the defaults below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg import errors as pgerr
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from ..errors import SendLogError
from .pgschema import prepare

CONNECT_TIMEOUT = 5  # seconds libpq waits for a server (unless the URL sets connect_timeout)
POOL_TIMEOUT = CONNECT_TIMEOUT + 1  # seconds a call waits for a pooled connection
# The pool re-establishes a lost connection in the background; after this many seconds it
# gives up (a later call starts a fresh attempt), so a dead server is not retried forever.
RECONNECT_TIMEOUT = 3 * CONNECT_TIMEOUT
NO_PASSWORD = "never put the password in the URL; use PGPASSWORD or ~/.pgpass"
PASSWORD_HINT = "; give the password with PGPASSWORD or ~/.pgpass"

# Defaults for what the URL does not say. TCP keepalives and tcp_user_timeout make a server
# that vanished without closing the socket (a crash, a cut network) fail a waiting call
# within about 10 seconds instead of the kernel's 2 hours; harmless on a Unix socket.
_DEFAULTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "application_name": "harkat-mail",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # milliseconds
}
# Server-side limits for our own sessions. None of our statements should run long (a plan of
# a large list lifts the first for its transaction); a lock wait that long means another
# process is stuck; and a session of ours frozen mid-transaction (a suspended laptop) must not
# hold row locks that every other sender then waits on.
SESSION_SETTINGS = (
    "SET statement_timeout = '30s';"
    " SET lock_timeout = '10s';"
    " SET idle_in_transaction_session_timeout = '15s'"
)
READ_ONLY_SETTING = "SET default_transaction_read_only = on"


def redact(url: str) -> str:
    """The URL without any password (in the user part or as a query parameter)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        user, host = authority.rsplit("@", 1)
        authority = f"{user.split(':', 1)[0]}@{host}"
    tail = re.sub(r"([?&])password=[^&]*&?", r"\1", tail).rstrip("?&")
    return f"{scheme}{sep}{authority}{tail}"


def connection_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for psycopg's connect: our defaults where the URL says nothing.

    Refuses a URL with a password (see the module docstring) or one libpq cannot parse.
    """
    location = redact(url)
    if location != url:  # checked before libpq parses it: its errors may quote the URL
        raise SendLogError(f"{location}: {NO_PASSWORD}")
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise SendLogError(f"{location}: not a usable PostgreSQL URL ({_one_line(exc)})") from None
    if any("password" in key for key in given):  # pass%77ord=, sslpassword=...: no query
        raise SendLogError(f"{location.split('?', 1)[0]}: {NO_PASSWORD}")
    kwargs = {k: v for k, v in _DEFAULTS.items() if k not in given}
    kwargs["autocommit"] = True  # every multi-statement change opens its own transaction
    return kwargs


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _cause(exc: psycopg.Error) -> str:
    """The server's own words, or libpq's last reason ("... failed: Connection refused")."""
    if exc.sqlstate and exc.diag.message_primary:
        text = exc.diag.message_primary
    else:
        lines = str(exc).splitlines()
        text = lines[0] if lines else ""
        if "failed: " in text:  # libpq: 'connection to server at "h", port 5432 failed: ...'
            text = text.rsplit("failed: ", 1)[1]
    text = re.sub(r"^(connection is bad: )?((FATAL|ERROR|PANIC): +)?", "", " ".join(text.split()))
    text = text or type(exc).__name__
    if text[:1].isupper() and text[1:2].islower():  # "Connection refused", not "SSL ..."
        text = text[0].lower() + text[1:]
    return text


# A failed connection carries no SQLSTATE: libpq's words tell what happened, checked in order.
_CONNECT_FAILURES = (
    (("password",), "the database refused the login", PASSWORD_HINT),
    (("role ", "authentication failed", "pg_hba.conf"), "the database refused the login", ""),
    (('database "',), "no such database", ""),
    (
        ("server closed the connection", "consuming input failed", "connection is lost",
         "connection is closed", "ssl syscall error", "eof detected", "terminating connection",
         "sending query failed", "connection timed out", "broken pipe", "connection reset"),
        "the connection to the database was lost",
        "",
    ),
    (
        ("connection refused", "timeout expired", "resolve host", "translate host name",
         "no route to host", "network is unreachable", "could not connect",
         "no such file or directory"),  # no Unix socket there: no server
        "the database is unreachable",
        "",
    ),
)  # fmt: skip
# By SQLSTATE: what the failure means for the user.
_BY_STATE: dict[type[psycopg.Error], str] = {
    pgerr.InvalidPassword: "the database refused the login",
    pgerr.InvalidAuthorizationSpecification: "the database refused the login",
    pgerr.InvalidCatalogName: "no such database",
    pgerr.InsufficientPrivilege: "permission denied in the database",
    pgerr.ReadOnlySqlTransaction: "the send log was opened read-only",
    pgerr.QueryCanceled: "a statement took too long",
    pgerr.LockNotAvailable: "waited too long for another sender's lock",
    pgerr.DeadlockDetected: "deadlock with another sender",
    pgerr.InsufficientResources: "the database server is out of resources",
    pgerr.AdminShutdown: "the connection to the database was lost",
    pgerr.CrashShutdown: "the connection to the database was lost",
    pgerr.CannotConnectNow: "the database is not accepting connections",
    pgerr.IdleInTransactionSessionTimeout: "the database ended a stalled transaction",
}


def describe(exc: psycopg.Error) -> str:
    """What a psycopg error means, with its cause, as one line (without the location)."""
    cause = _cause(exc)
    for kind, what in _BY_STATE.items():
        if isinstance(exc, kind):
            return f"{what} ({cause})"
    if isinstance(exc, psycopg.OperationalError) and not exc.sqlstate:
        lowered = cause.lower()
        for phrases, what, hint in _CONNECT_FAILURES:
            if any(phrase in lowered for phrase in phrases):
                return f"{what} ({cause}){hint}"
        return f"cannot use the database ({cause})"
    return f"database error ({cause})"


@contextmanager
def pg_errors(location: str) -> Iterator[None]:
    """Turn every psycopg error into one SendLogError line that names the URL."""
    try:
        yield
    except psycopg.Error as exc:
        raise SendLogError(f"{location}: {describe(exc)}") from None


async def open_pool(
    url: str, kwargs: dict[str, Any], read_only: bool, size: int
) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """Check (or create, or migrate) the schema, then open a pool of up to ``size``."""
    settings = SESSION_SETTINGS + (f"; {READ_ONLY_SETTING}" if read_only else "")

    async def configure(conn: AsyncConnection[Any]) -> None:
        await conn.execute(settings)

    with pg_errors(url):
        # A connection of its own first: the pool would only time out, hiding libpq's reason.
        async with await AsyncConnection.connect(url, **kwargs) as conn:
            await configure(conn)
            await prepare(conn, url, read_only)
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=size,
            open=False,
            configure=configure,
            # An empty query before each use: a connection the server dropped while idle (a
            # restart, idle_session_timeout) is replaced instead of failing the call.
            check=AsyncConnectionPool.check_connection,
            timeout=POOL_TIMEOUT,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name="harkat-send-log",
        )
        await pool.open(wait=False)
    return pool
