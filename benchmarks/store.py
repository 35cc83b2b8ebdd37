"""Send-log throughput: claim -> sending -> sent cycles per second, no SMTP, SQLite and PostgreSQL.

    PYTHONPATH=src .venv/bin/python benchmarks/store.py                # throwaway cluster
    PYTHONPATH=src .venv/bin/python benchmarks/store.py --pg-no-fsync  # as the tests' cluster
    PYTHONPATH=src .venv/bin/python benchmarks/store.py --url postgresql://...

Each measurement gets a store of its own (a new SQLite file; a new database in the throwaway
cluster, or a new campaign name with --url), planned once through the Store protocol with
--rows members (check_inputs, plan; not timed). Then N claimer processes (as real senders
are: separate processes, each with its own store connection) each start a run and repeat
claim(--batch) -> apply(keys: `sending`) -> apply(`sent` verdicts) until nothing is due,
then finish_run. Timed from the moment every claimer is ready (a barrier) to the last
finish_run. At the end every key must have been handed to exactly one claimer and be `sent`
with one attempt in the store.

The machine is shared and noisy, so every round measures all four combinations back to back
and prints each one's ratio to SQLite with 1 claimer of the same round (the anchor). The
throwaway cluster runs with fsync on by default: SQLite flushes every commit too.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from harkat_mail.models import Contact, DeliveryResult, Outcome  # noqa: E402
from harkat_mail.store import open_store  # noqa: E402
from harkat_mail.store.protocol import RunInfo  # noqa: E402

GOAL = 5000  # recipients/s, PostgreSQL with 4 claimers
INPUTS = {"YAML": "bench", "member list": "bench", "template": "bench"}


def members(n: int) -> list[Contact]:
    return [
        Contact(key=f"m{i}@example.org", email=f"m{i}@example.org", row=i + 1, source="m.csv",
                language="en")
        for i in range(n)
    ]  # fmt: skip


async def plan(location: str, campaign: str, rows: int) -> float:
    """Plan the campaign as ``send`` does; the seconds plan() took."""
    store = await open_store(location)
    try:
        await store.check_inputs(campaign, INPUTS, False)
        contacts = members(rows)
        began = time.perf_counter()
        await store.plan(campaign, contacts, [], {c.key: f"<{c.key}@bench>" for c in contacts})
        return time.perf_counter() - began
    finally:
        await store.close()


async def claim_all(location: str, campaign: str, run_id: str, batch: int, ready) -> tuple:
    """One sender's loop minus SMTP: (began, ended, keys it marked sent)."""
    store = await open_store(location)
    await store.start_run(RunInfo(run_id, campaign, "bench", os.getpid(), 300))
    ready.wait()  # every claimer connected and registered: go together
    began = time.time()
    done: list[str] = []
    while claims := await store.claim(campaign, run_id, batch, False):
        keys = [c.key for c in claims]
        assert await store.apply(campaign, run_id, keys) == [], "sending refused"
        verdicts = [(DeliveryResult(k, Outcome.SENT, 250, "ok"), None) for k in keys]
        assert await store.apply(campaign, run_id, verdicts) == [], "verdict refused"
        done.extend(keys)
    await store.finish_run(run_id)
    ended = time.time()
    await store.close()
    return began, ended, done


def claimer(location: str, campaign: str, run_id: str, batch: int, ready, out) -> None:
    try:
        out.put(asyncio.run(claim_all(location, campaign, run_id, batch, ready)))
    except BaseException as exc:
        ready.abort()  # the others must not wait for this one
        out.put(exc)
        raise


async def verify(location: str, campaign: str, rows: int, handed: list[str]) -> None:
    """Every key handed to exactly one claimer, and `sent` once (one attempt) in the store."""
    twice = [k for k, n in Counter(handed).items() if n > 1]
    assert not twice, f"{len(twice)} keys claimed by two claimers, e.g. {twice[:3]}"
    assert len(handed) == rows, f"{len(handed)} keys done of {rows}"
    store = await open_store(location, read_only=True)
    try:
        counts = {state: n for state, n in (await store.counts(campaign)).items() if n}
        assert counts == {"sent": rows}, counts
        attempts = Counter([row["attempts"] async for row in store.rows(campaign)])
        assert attempts == {1: rows}, attempts
    finally:
        await store.close()


def measure(location: str, claimers: int, rows: int, batch: int) -> tuple[float, float]:
    """(recipients/s, plan seconds) of ``claimers`` processes over a fresh campaign."""
    campaign = f"bench-{uuid.uuid4().hex[:8]}"
    planned = asyncio.run(plan(location, campaign, rows))
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Barrier(claimers), ctx.Queue()
    procs = [
        ctx.Process(target=claimer, args=(location, campaign, f"{campaign}-{i}", batch, ready, out))
        for i in range(claimers)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise SystemExit(f"a claimer failed: {failed[0]!r}")
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    asyncio.run(verify(location, campaign, rows, [k for r in results for k in r[2]]))
    return rows / elapsed, planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--pg-no-fsync", action="store_true",
                        help="throwaway cluster with fsync off, as the tests run it")  # fmt: skip
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harkat-bench-")))
        sqlite: Callable[[], str] = lambda: str(folder / f"{uuid.uuid4().hex[:8]}.sqlite")  # noqa: E731
        if args.url:
            pg: Callable[[], str] = lambda: args.url  # noqa: E731  (a fresh campaign each time)
            print(f"PostgreSQL at {args.url}; SQLite in {folder}")
        else:
            import _pg

            server = stack.enter_context(_pg.throwaway(durable=not args.pg_no_fsync))
            pg = lambda: server.url(server.create_database())  # noqa: E731
            print(f"throwaway PostgreSQL ({_pg.describe(not args.pg_no_fsync)}); "
                  f"SQLite (synchronous=FULL) in {folder}")  # fmt: skip
        combos = [("SQLite", sqlite, 1), ("SQLite", sqlite, 4), ("PostgreSQL", pg, 1),
                  ("PostgreSQL", pg, 4)]  # fmt: skip
        rates: dict[tuple[str, int], list[float]] = {(s, n): [] for s, _, n in combos}
        ratios: list[float] = []
        print(f"{args.rows:,} rows per campaign, claim batches of {args.batch}; recipients/s "
              "(x SQLite-1 of the same round):")  # fmt: skip
        for round_ in range(1, args.rounds + 1):
            line = []
            for name, location, n in combos:
                rate, planned = measure(location(), n, args.rows, args.batch)
                rates[(name, n)].append(rate)
                anchor = rates[("SQLite", 1)][-1]
                line.append(f"{name}-{n} {rate:,.0f} (x{rate / anchor:.2f}; plan {planned:.2f} s)")
            ratios.append(rates[("PostgreSQL", 4)][-1] / rates[("SQLite", 1)][-1])
            print(f"round {round_}: " + "; ".join(line), flush=True)
    print("median over rounds (all keys verified sent exactly once):")
    for (name, n), values in rates.items():
        print(f"  {name}, {n} claimer{'s' if n > 1 else ' '}: {statistics.median(values):8,.0f} "
              "recipients/s")  # fmt: skip
    pg4 = statistics.median(rates[("PostgreSQL", 4)])
    print(f"ratio PostgreSQL-4-claimers / SQLite-1-claimer: {statistics.median(ratios):.2f}")
    print(f"goal: PostgreSQL >= {GOAL:,} recipients/s with 4 claimers: "
          f"{'met' if pg4 >= GOAL else 'NOT met'} ({pg4:,.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
