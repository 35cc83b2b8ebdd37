"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, pg_ctl on 127.0.0.1.

Nothing here touches a system cluster (Debian's on port 5432 may well be running): the
cluster gets its own data dir, its own Unix socket dir and a free loopback port, and every
URL names 127.0.0.1 and that port. PostgreSQL refuses to run as root, so as root the
cluster's files belong to, and initdb/pg_ctl run as, the ``postgres`` system user (or
``nobody`` where that does not exist). HARKAT_PG_BINDIR names the folder of initdb, pg_ctl
and postgres where they are not in Debian's /usr/lib/postgresql/VERSION/bin nor on PATH.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

ROLE = "harkat"
DATABASE = "harkat"
TOOLS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "Debian: apt-get install postgresql; .ci/run installs it"


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, newest Debian version first."""

    def complete(folder: Path) -> bool:
        return all(os.access(folder / tool, os.X_OK) for tool in TOOLS)

    override = os.environ.get("HARKAT_PG_BINDIR")
    if override:
        return Path(override) if complete(Path(override)) else None

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = [Path(found).resolve().parent for found in filter(None, [shutil.which("initdb")])]
    return next((folder for folder in [*debian, *on_path] if complete(folder)), None)


def missing_reason() -> str:
    """Why ``find_bindir`` found nothing, for a skip or a failure."""
    override = os.environ.get("HARKAT_PG_BINDIR")
    where = f"HARKAT_PG_BINDIR={override} lacks them" if override else "not installed"
    return f"PostgreSQL's {', '.join(TOOLS)}: {where} ({INSTALL_HINT})"


def free_port() -> int:
    """A loopback port with nothing listening on it (the kernel's choice, never 5432)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def _reachable_by_others(folder: Path) -> bool:
    """Whether every directory above ``folder`` lets any user pass through it."""
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in [folder, *folder.parents])


class PgServer:
    """One throwaway cluster: ``start``/``stop`` it (even mid-test), ``url`` a database in it.

    The port stays the same across ``stop``/``start``, so URLs handed out before a stop
    work again after the restart.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.owner = _run_as()
        parent = Path(tempfile.gettempdir())
        if self.owner is not None and not _reachable_by_others(parent):
            parent = Path("/tmp")  # TMPDIR is private to root; the postgres user must get in
        self.base = Path(tempfile.mkdtemp(prefix="harkat-pg-", dir=parent))
        self.data = self.base / "data"
        self.sockets = self.base / "sockets"
        self.log = self.base / "postgres.log"
        self.port = 0
        self.running = False
        self.timings: dict[str, float] = {}
        self._databases = 0
        self.sockets.mkdir()
        if self.owner is not None:
            for path in (self.base, self.sockets):
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        atexit.register(self.close)  # a safety net should the fixture's teardown not run

    # -- processes ---------------------------------------------------------------------

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> None:
        """Run a PostgreSQL tool as the cluster's owner; raise with its output on failure."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        owner: dict[str, object] = {}
        if self.owner is not None:
            env["HOME"] = str(self.base)
            owner = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bindir / tool), *args],
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **owner,  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {shlex.join(args)} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- postgres.log ---\n" + "\n".join(text.splitlines()[-lines:])

    def init(self) -> None:
        """initdb: UTF8, C locale, superuser ``harkat``, trust for local and 127.0.0.1 only."""
        began = time.perf_counter()
        self._pg(
            "initdb",
            "-D", str(self.data),
            "-U", ROLE,  # the bootstrap superuser (login) is the harkat role
            "-A", "trust",
            "-E", "UTF8",
            "--locale", "C",
            "--no-sync",  # a throwaway cluster: no need to flush it to disk
            "--no-instructions",
        )  # fmt: skip
        # Trust, on a throwaway cluster, for the Unix socket and 127.0.0.1 only (initdb's
        # default also lists ::1 and replication); the server listens on 127.0.0.1 alone.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        self.timings["initdb"] = time.perf_counter() - began

    def start(self) -> None:
        """Start the server and wait until it accepts connections; a new port if it has none."""
        if self.running:
            return
        began = time.perf_counter()
        attempts = 1 if self.port else 5  # a restart keeps its port: URLs already given out
        for attempt in range(attempts):
            port = self.port or free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(str(self.sockets))}"
                # fsync and full-page writes guard against the machine losing power, which no
                # test simulates, and the cluster is deleted at the end of the session: off.
                # synchronous_commit stays ON: off, a commit can be lost when the server
                # stops with -m immediate (as stop() does to simulate a crash), and "what was
                # committed before the database went away is still there" is what the store's
                # tests check. With fsync off, a synchronous commit costs a write(), no flush.
                " -c fsync=off -c full_page_writes=off"
            )
            try:
                self._pg(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                    "-w", "-t", "60", "start",
                )  # fmt: skip
            except RuntimeError:
                if attempt == attempts - 1:  # the port was taken between choosing and binding?
                    raise
                continue
            self.port = port
            break
        self.running = True
        self.timings["start"] = time.perf_counter() - began

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` (the default) drops every connection as a crash would."""
        if not self.running:
            return
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the cluster. Safe to call twice."""
        if not self.base.exists():
            return
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- databases ---------------------------------------------------------------------

    def url(self, database: str = DATABASE) -> str:
        """The libpq URL of ``database`` in this cluster, as the ``harkat`` role."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg  # a project dependency, imported late so the rest of the suite never needs it

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database ``test_<n>``; returns its name."""
        self._databases += 1
        name = f"test_{self._databases}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session a test left connected to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def launch(bindir: Path) -> PgServer:
    """initdb, start, and create the ``harkat`` database; the cluster is deleted on failure."""
    server = PgServer(bindir)
    try:
        server.init()
        server.start()
        server._admin(f'CREATE DATABASE "{DATABASE}" OWNER "{ROLE}"')
    except BaseException:
        server.close()
        raise
    return server
