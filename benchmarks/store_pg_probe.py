"""Throughput of the PostgreSQL send log: claim -> mark sending -> sent, with N claimers.

    PYTHONPATH=src .venv/bin/python benchmarks/store_pg_probe.py            # own cluster
    PYTHONPATH=src .venv/bin/python benchmarks/store_pg_probe.py --url postgresql://...

Without --url it starts a throwaway cluster as the tests do (tests/pgserver.py: fsync off,
synchronous_commit on), so the figures measure the store's statements and round trips,
not a disk's flushes. For each claimer count, a fresh campaign of --rows members is planned;
each claimer is a run of its own on a store (a pool) of its own, and repeats: claim
--batch rows, apply `sending` to them all, apply a `sent` verdict to them all, until nothing
is due. With --processes each claimer is a separate process (as on separate machines);
otherwise they share one event loop. Also times plan() of --plan-rows members, twice.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from harkat_mail.models import Contact, DeliveryResult, Outcome  # noqa: E402
from harkat_mail.store.postgres import PostgresStore  # noqa: E402
from harkat_mail.store.protocol import RunInfo  # noqa: E402


def members(n: int) -> list[Contact]:
    return [
        Contact(key=f"m{i}@example.org", email=f"m{i}@example.org", row=i + 1, source="m.csv",
                language="en")
        for i in range(n)
    ]  # fmt: skip


async def plan(url: str, campaign: str, n: int) -> float:
    store = await PostgresStore.open(url)
    contacts = members(n)
    began = time.perf_counter()
    await store.plan(campaign, contacts, [], {c.key: f"<{c.key}>" for c in contacts})
    took = time.perf_counter() - began
    await store.close()
    return took


async def claimer(url: str, campaign: str, run_id: str, batch: int) -> int:
    """Claim, mark sending, record sent, until nothing is due; the rows done."""
    store = await PostgresStore.open(url)
    await store.start_run(RunInfo(run_id, campaign, "probe", os.getpid(), 60))
    done = 0
    while claims := await store.claim(campaign, run_id, batch, False):
        keys = [c.key for c in claims]
        assert await store.apply(campaign, run_id, keys) == []
        verdicts = [(DeliveryResult(k, Outcome.SENT, 250, "2.0.0 Ok"), None) for k in keys]
        assert await store.apply(campaign, run_id, verdicts) == []
        done += len(keys)
    await store.finish_run(run_id)
    await store.close()
    return done


def claimer_process(url: str, campaign: str, run_id: str, batch: int, start: float) -> int:
    time.sleep(max(0.0, start - time.time()))  # every process starts together
    return asyncio.run(claimer(url, campaign, run_id, batch))


async def cycle(url: str, claimers: int, rows: int, batch: int, processes: bool) -> float:
    campaign = f"probe-{claimers}-{'p' if processes else 'a'}"
    await plan(url, campaign, rows)
    if processes:
        start = time.time() + 3  # time for the processes to start and import
        with multiprocessing.get_context("spawn").Pool(claimers) as pool:
            args = [(url, campaign, f"{campaign}-{i}", batch, start) for i in range(claimers)]
            done = sum(pool.starmap(claimer_process, args))
            elapsed = time.time() - start  # includes each process's open(): a few ms
    else:
        began = time.perf_counter()
        runs = [claimer(url, campaign, f"{campaign}-{i}", batch) for i in range(claimers)]
        done = sum(await asyncio.gather(*runs))
        elapsed = time.perf_counter() - began
    assert done == rows, (done, rows)
    return rows / elapsed


async def main(url: str, args: argparse.Namespace) -> None:
    first = await plan(url, "plan-probe", args.plan_rows)
    again = await plan(url, "plan-probe", args.plan_rows)
    print(f"plan {args.plan_rows:,} members: {first:.2f} s; again (all present): {again:.2f} s")
    for processes in (False, True) if args.processes else (False,):
        how = "processes" if processes else "asyncio claimers in one process"
        for n in args.claimers:
            rate = await cycle(url, n, args.rows, args.batch, processes)
            print(f"{n} {how}, batches of {args.batch}, {args.rows:,} rows: {rate:,.0f} rows/s")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--claimers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--plan-rows", type=int, default=100_000)
    parser.add_argument("--processes", action="store_true", help="also as separate processes")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.url:
        asyncio.run(main(args.url, args))
        return
    from tests import pgserver

    bindir = pgserver.find_bindir()
    if bindir is None:
        sys.exit(pgserver.missing_reason())
    server = pgserver.launch(bindir)
    try:
        print(f"throwaway PostgreSQL cluster in {bindir}")
        asyncio.run(main(server.url(), args))
    finally:
        server.close()


if __name__ == "__main__":
    cli()
