"""Delivery end to end: ``harkat-mail send`` into Postfix's smtp-sink, three modes.

Needs Debian's postfix package for /usr/sbin/smtp-sink and /usr/sbin/smtp-source:

    apt-get install -y postfix
    python benchmarks/deliver.py                      # throughput: send vs smtp-source
    python benchmarks/deliver.py --send-log URL       # the same, send log in PostgreSQL
    python benchmarks/deliver.py --mode stores        # SQLite vs PostgreSQL; 2 sends vs 1
    python benchmarks/deliver.py --mode memory        # peak RSS of a 100,000-recipient send

Every send is the real command (``python -m harkat_mail send --yes``) on the sample appeal
over N synthetic members, relayed with 10 connections to smtp-sink on 127.0.0.1: render,
MIME, SMTP and the send log all included. The machine is shared and noisy, so each mode
measures its anchor in the same run and prints every figure with its ratio to it:

- throughput: ``smtp-source -s 10`` with the same message count and size is the anchor.
- stores (each round, back to back, in alternating order): a send on SQLite (the anchor),
  the same send on PostgreSQL, and two sends started together on one PostgreSQL campaign,
  each on a fresh campaign; smtp-source is measured each round too. Without --send-log a
  throwaway cluster is started, fsync on (benchmarks/_pg.py).
  Every send's recipients are checked in the store: all `sent`, none twice. PostgreSQL
  sends also print the transactions they committed (the server's statistics): what a
  send costs the store is mostly per commit; and every send the CPU seconds it used
  (render worker included) and, for the throwaway cluster, the server's.
- memory: RSS summed over the send process and all its children (the render worker),
  sampled every 0.2 s (benchmarks/_rss.py), for --rss-recipients; the anchor is the same
  measurement for --recipients in the same run.

With --dkim every message is also DKIM-signed (a throwaway 2048-bit key).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from _rss import TreeRss  # noqa: E402

SINK, SOURCE = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"
MESSAGE_SIZE = 10_000  # the sample's messages are ~10 KB
MEMORY_GOAL_MB = 400


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dkim_block(folder: Path) -> str:
    """A throwaway RSA key in ``folder`` and the campaign's dkim: block for it."""
    from harkat_mail.mail.dkimsign import generate_key

    generate_key(folder / "dkim.pem")
    return f"dkim:\n  domain: cupw.example.org\n  selector: bench\n  key_path: {folder}/dkim.pem\n"


def project(folder: Path, port: int, count: int, dkim: bool = False) -> Path:
    """The sample campaign over ``count`` synthetic members, relayed to 127.0.0.1:port.

    The campaign gets a name of its own, so sends sharing one PostgreSQL send log each
    start from nothing.
    """
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "campaigns").mkdir()
    (folder / "lists").mkdir()
    with (folder / "lists" / "members.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["email", "first_name", "last_name", "language", "status", "local", "consent"]
        )
        for i in range(count):
            writer.writerow(
                [
                    f"member{i}@example.org",
                    ["Émilie", "Owen", "Zoë"][i % 3],
                    "Côté",
                    "fr" if i % 3 == 0 else "en",
                    "active",
                    str(100 + i % 400),
                    "implied",
                ]
            )
    text = (ROOT / "campaigns" / "sept2018.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "smtp: local",
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  tls: none\n  connections: 10",
    )
    text = text.replace("name: sept2018", f"name: bench-{uuid.uuid4().hex[:10]}", 1)
    if dkim:
        text += dkim_block(folder)
    campaign = folder / "campaigns" / "sept2018.yaml"
    campaign.write_text(text, encoding="utf-8")
    return campaign


@dataclass
class Send:
    """One ``harkat-mail send``: what it printed and how long it took."""

    rate: float  # messages/s it printed (its delivery phase), 0 when it had nothing to send
    wall: float  # seconds from start to exit: loading the list and planning included
    delivered: int
    rss: TreeRss | None = None


def start_send(campaign: Path, send_log: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "HARKAT_UNSUBSCRIBE_SECRET": "benchmark-secret-0123456789"}
    command = [sys.executable, "-m", "harkat_mail", "send", str(campaign), "--yes"]
    if send_log:
        command += ["--send-log", send_log]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def finish_send(proc: subprocess.Popen[str], started: float) -> Send:
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"harkat-mail send failed ({proc.returncode}):\n{out}\n{err}")
    rate = re.search(r"([\d.]+) messages/s", out)
    delivered = re.search(r"delivered (\d+)", out)
    return Send(
        float(rate.group(1)) if rate else 0.0, wall, int(delivered.group(1)) if delivered else 0
    )


def harkat_send(campaign: Path, send_log: str | None, memory: bool = False) -> Send:
    """Run the real command once; with ``memory``, sample its process tree's RSS."""
    started = time.perf_counter()
    proc = start_send(campaign, send_log)
    rss = TreeRss(proc.pid).start() if memory else None
    try:
        result = finish_send(proc, started)
    finally:
        if rss is not None:
            rss.stop()
    result.rss = rss
    return result


def sends_together(campaign: Path, send_log: str, count: int) -> tuple[float, list[Send]]:
    """``count`` sends of one campaign started at once; (wall seconds until all exited, each)."""
    started = time.perf_counter()
    procs = [start_send(campaign, send_log) for _ in range(count)]
    results = [finish_send(proc, started) for proc in procs]
    return max(r.wall for r in results), results


def sent_in_store(campaign: Path, send_log: str | None) -> dict[str, int]:
    """The campaign's rows per state, read back from its send log."""
    from harkat_mail.campaign import load_campaign
    from harkat_mail.store import open_store

    loaded = load_campaign(campaign)

    async def counts() -> dict[str, int]:
        store = await open_store(send_log or loaded.send_log, read_only=True)
        try:
            return {k: v for k, v in (await store.counts(loaded.name)).items() if v}
        finally:
            await store.close()

    return asyncio.run(counts())


def check(campaign: Path, send_log: str | None, sends: list[Send], count: int) -> None:
    """Every recipient delivered by exactly one of ``sends`` and `sent` in the store."""
    delivered = sum(s.delivered for s in sends)
    states = sent_in_store(campaign, send_log)
    if delivered != count or states != {"sent": count}:
        raise SystemExit(f"expected {count} sent once: sends say {delivered}, store {states}")


def smtp_source(port: int, count: int) -> float:
    """The anchor: Postfix's own SMTP client, 10 sessions, same count and message size."""
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-s", "10", "-m", str(count), "-l", str(MESSAGE_SIZE), f"127.0.0.1:{port}"],
        check=True,
    )
    return count / (time.perf_counter() - started)


@contextmanager
def postgres(send_log: str | None, durable: bool) -> Iterator[tuple[str, Callable[[], float]]]:
    """The PostgreSQL URL given, else a throwaway cluster's; and a reading of the server's CPU.

    The reading (seconds) is the postmaster's own CPU and that of its exited children: each
    send's backends exit when it closes its pool. 0 for a server given by URL.
    """
    if send_log and send_log.startswith(("postgresql://", "postgres://")):
        yield send_log, lambda: 0.0
        return
    import _pg

    with _pg.throwaway(durable) as server:
        print(f"throwaway PostgreSQL cluster ({_pg.describe(durable)})")
        pid = (server.data / "postmaster.pid").read_text().split()[0]

        def cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # u,s,cu,cs

        yield server.url(), cpu


def throughput(args: argparse.Namespace, port: int, tmp: Path) -> None:
    campaign = project(tmp / "t", port, args.recipients, args.dkim)
    send = harkat_send(campaign, args.send_log)
    source_rate = smtp_source(port, args.recipients)
    log = f"send log {args.send_log}" if args.send_log else "SQLite send log"
    print(
        f"harkat-mail send: {send.rate:,.0f} messages/s over {args.recipients:,} recipients "
        f"(10 connections{', DKIM-signed' if args.dkim else ''}, {log}; "
        f"{send.wall:.1f} s wall clock including start-up)"
    )
    print(
        f"smtp-source -s 10 (same run, {MESSAGE_SIZE // 1000} KB messages): "
        f"{source_rate:,.0f} messages/s"
    )
    print(f"ratio: {send.rate / source_rate:.2f} of smtp-source")
    met = send.rate >= 1000 and send.rate / source_rate >= 0.25
    print(f"goal: >= 1,000 messages/s and >= 0.25 of smtp-source: {'met' if met else 'NOT met'}")


def pg_commits(url: str) -> int:
    """Transactions committed in the database so far (the server's statistics)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def cpu_of_children() -> float:
    """CPU seconds (user + system) of the children that exited so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Measured:
    wall: float
    sends: list[Send]
    commits: int  # the PostgreSQL transactions the sends made (0 on SQLite)
    cpu: float  # CPU seconds of the send processes and their render workers
    server_cpu: float  # CPU seconds of the PostgreSQL server (throwaway cluster only)


def measured(
    campaign: Path, send_log: str | None, together: int, count: int, server: Callable[[], float]
) -> Measured:
    """``together`` sends of a fresh campaign, checked in the store."""
    before, cpu = (pg_commits(send_log) if send_log else 0), cpu_of_children()
    server_cpu = server()
    if together == 1:
        send = harkat_send(campaign, send_log)
        wall, sends = send.wall, [send]
    else:
        wall, sends = sends_together(campaign, send_log or "", together)
    cpu = cpu_of_children() - cpu
    time.sleep(0.2)  # the backends' exit reaches the postmaster
    server_cpu = server() - server_cpu if send_log else 0.0
    commits = pg_commits(send_log) - before if send_log else 0
    check(campaign, send_log, sends, count)
    return Measured(wall, sends, commits, cpu, server_cpu)


def stores(args: argparse.Namespace, port: int, tmp: Path) -> None:
    n = args.recipients
    pg_vs_sqlite: list[float] = []  # by the printed delivery rate
    pg_vs_sqlite_wall: list[float] = []  # by wall clock, planning included
    two_vs_one: list[float] = []  # wall of two together / wall of one, both on PostgreSQL
    with postgres(args.send_log, not args.pg_no_fsync) as (url, server):
        for round_ in range(1, args.rounds + 1):
            folder = tmp / f"r{round_}"
            source_rate = smtp_source(port, n)
            # Odd rounds run SQLite first, even rounds last: a drift in the machine's load
            # then favours neither store.
            order = [("sqlite", None, 1), ("pg", url, 1), ("pg2", url, 2)]
            results = {
                what: measured(
                    project(folder / what, port, n, args.dkim), send_log, together, n, server
                )
                for what, send_log, together in (order if round_ % 2 else order[::-1])
            }
            lite, pg = results["sqlite"].sends[0], results["pg"].sends[0]
            wall2, pair = results["pg2"].wall, results["pg2"].sends
            pg_vs_sqlite.append(pg.rate / lite.rate)
            pg_vs_sqlite_wall.append(lite.wall / pg.wall)
            two_vs_one.append(wall2 / pg.wall)
            print(
                f"round {round_}, {n:,} recipients each, all verified sent once; anchor "
                f"smtp-source -s 10: {source_rate:,.0f} messages/s"
            )
            for what, key in (("SQLite", "sqlite"), ("PostgreSQL", "pg")):
                s, m = results[key].sends[0], results[key]
                print(
                    f"  {what:<10} 1 send: {s.rate:6,.0f} messages/s "
                    f"(x{s.rate / source_rate:.2f} of smtp-source), {s.wall:5.1f} s wall, "
                    f"CPU {m.cpu:.1f} s"
                    + (
                        f" + server {m.server_cpu:.1f} s, {m.commits:,} commits"
                        if m.commits
                        else ""
                    )
                )
            split = " + ".join(f"{s.delivered:,}" for s in pair)
            two = results["pg2"]
            print(
                f"  PostgreSQL 2 sends together: {wall2:5.1f} s wall ({split} delivered, "
                f"CPU {two.cpu:.1f} s + server {two.server_cpu:.1f} s, {two.commits:,} commits; "
                f"{n / wall2:,.0f} recipients/s by wall clock vs {n / pg.wall:,.0f} for one)"
            )
            print(
                f"  PostgreSQL / SQLite: x{pg_vs_sqlite[-1]:.2f} by delivery rate, "
                f"x{pg_vs_sqlite_wall[-1]:.2f} by wall clock; two together / one: "
                f"x{two_vs_one[-1]:.2f} of the wall time",
                flush=True,
            )
    rate, wall = statistics.median(pg_vs_sqlite), statistics.median(pg_vs_sqlite_wall)
    both = rate >= 0.9 and wall >= 0.9
    print(
        f"goal: PostgreSQL >= 0.9x SQLite (median x{rate:.2f} by rate, x{wall:.2f} by wall "
        f"clock): {'met' if both else 'NOT met'}"
    )
    ratio = statistics.median(two_vs_one)
    print(
        f"goal: two sends together take no longer than one (median wall ratio x{ratio:.2f}): "
        f"{'met' if ratio <= 1 else 'NOT met'}"
    )


def memory(args: argparse.Namespace, port: int, tmp: Path) -> None:
    peaks = {}
    for count in (args.recipients, args.rss_recipients):
        campaign = project(tmp / f"m{count}", port, count, args.dkim)
        send = harkat_send(campaign, args.send_log, memory=True)
        check(campaign, args.send_log, [send], count)
        assert send.rss is not None
        peaks[count] = send.rss.peak_kb / 1024
        print(
            f"{count:,}-recipient send: peak RSS summed over its process tree "
            f"{peaks[count]:,.0f} MB "
            f"({send.rss.samples} samples; {send.rate:,.0f} messages/s, {send.wall:.0f} s wall); "
            f"each process's own peak: {send.rss.breakdown()}",
            flush=True,
        )
    big = peaks[args.rss_recipients]
    per = (big - peaks[args.recipients]) / (args.rss_recipients - args.recipients) * 1000
    print(
        f"ratio: x{big / peaks[args.recipients]:.2f} of the {args.recipients:,}-recipient send "
        f"(same run); {per:.2f} MB more per 1,000 recipients"
    )
    met = big <= MEMORY_GOAL_MB
    print(
        f"goal: <= {MEMORY_GOAL_MB} MB summed for {args.rss_recipients:,} recipients: "
        f"{'met' if met else 'NOT met'} ({big:,.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("throughput", "stores", "memory"), default="throughput")
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rss-recipients", type=int, default=100_000, help="--mode memory")
    parser.add_argument("--rounds", type=int, default=3, help="--mode stores")
    parser.add_argument(
        "--send-log",
        metavar="PATH|URL",
        help="passed to harkat-mail send --send-log; --mode stores: the PostgreSQL URL "
        "(default: a throwaway cluster)",
    )
    parser.add_argument(
        "--pg-no-fsync", action="store_true", help="throwaway cluster with fsync off"
    )
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every message")
    args = parser.parse_args()
    for tool in (SINK, SOURCE):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y postfix")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    time.sleep(0.5)
    try:
        with tempfile.TemporaryDirectory(prefix="harkat-deliver-") as tmp:
            {"throughput": throughput, "stores": stores, "memory": memory}[args.mode](
                args, port, Path(tmp)
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
