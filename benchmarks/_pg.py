"""A throwaway PostgreSQL cluster for the benchmarks: the tests' own (tests/pgserver.py).

The tests start it with fsync and full_page_writes off. SQLite's send log flushes every
commit (synchronous=FULL), so comparing the two needs PostgreSQL flushing too: ``durable``
(the default here) restarts the cluster with PostgreSQL's own defaults (fsync on), as a real
server runs. ``durable=False`` measures what the tests' cluster does (statements and round
trips, no flushes).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for tests/pgserver.py

from tests import pgserver  # noqa: E402


def describe(durable: bool) -> str:
    return "fsync on, as a real server" if durable else "fsync off, as the tests' cluster"


@contextmanager
def throwaway(durable: bool = True) -> Iterator[pgserver.PgServer]:
    """A running cluster with a ``harkat`` database; deleted on leaving."""
    bindir = pgserver.find_bindir()
    if bindir is None:
        raise SystemExit(pgserver.missing_reason())
    server = pgserver.launch(bindir)
    try:
        if durable:  # pgserver passes fsync=off on the command line: start again without it
            server.stop("fast")
            options = (
                f"-c listen_addresses=127.0.0.1 -p {server.port}"
                f" -k {shlex.quote(str(server.sockets))}"
            )
            server._pg(
                "pg_ctl", "-D", str(server.data), "-l", str(server.log), "-o", options,
                "-w", "-t", "60", "start",
            )  # fmt: skip
            server.running = True
        yield server
    finally:
        server.close()
