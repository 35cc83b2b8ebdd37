"""Where the sending process's memory goes: one send into smtp-sink, stage by stage.

    python benchmarks/memprofile.py                       # tracemalloc, list of 100,000
    python benchmarks/memprofile.py --no-trace --trim     # RSS only, full send, malloc_trim probe

Runs ``harkat-mail send`` in this process on deliver.py's synthetic campaign and prints RSS at
each stage (imports, list loaded and variants compiled, planned, sent) with what pyarrow's
pool holds. The render worker is a process of its own and is not seen here (deliver.py
--mode memory shows its peak: about its imports).

With tracing (the default) it also prints the memory Python allocated at each stage and,
from a snapshot taken whenever traced memory grew 5% past the last one, the lines holding
the most at the run's traced peak and at the sending stage. tracemalloc slows the send
several times and its own records add to RSS, so the send stops after --limit recipients
(the whole list is still loaded and planned); read the traced figures, not RSS, then.

--steps (with tracing) also prints the traced peak reached inside each step of loading the
list (reading, cleaning, validating, ``to_dict`` ...), above what was traced when it began,
and what it left allocated: the peaks are short, and a snapshot every 0.5 s misses them.

--trim asks pyarrow's pool (mimalloc) to release what it no longer uses, then calls glibc's
malloc_trim(0), after loading, and prints RSS after each: memory already freed that the
process still held.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).parent)]

import deliver  # noqa: E402

MB = 1024 * 1024


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def arrow_mb() -> float:
    """What pyarrow's memory pool has allocated now (not traced by tracemalloc)."""
    if "pyarrow" not in sys.modules:
        return 0.0
    return float(sys.modules["pyarrow"].total_allocated_bytes()) / MB


class Stages:
    """RSS (and traced memory) at each stage; snapshots at the traced peaks."""

    def __init__(self, trace: bool, trim: bool) -> None:
        self.trace, self.trim = trace, trim
        self.lines: list[str] = []
        self.stage = "start"
        self.best: dict[str, tuple[int, tracemalloc.Snapshot]] = {}  # stage: (traced, snap)
        self.done = threading.Event()

    def mark(self, stage: str) -> None:
        line = f"{stage:<34} RSS {rss_mb():6.0f} MB, pyarrow pool {arrow_mb():5.0f} MB"
        if self.trace:
            current, peak = tracemalloc.get_traced_memory()
            line += f"; traced now {current / MB:5.0f} MB, peak so far {peak / MB:5.0f} MB"
        self.lines.append(line)
        self.stage = stage

    def watch(self) -> None:
        """Keep, per stage, the snapshot of its highest traced memory (5% steps)."""
        while not self.done.wait(0.5):
            current, _ = tracemalloc.get_traced_memory()
            stage = self.stage
            if current > self.best.get(stage, (0, None))[0] * 1.05:
                self.best[stage] = (current, tracemalloc.take_snapshot())


def instrument(stages: Stages) -> None:
    """Wrap the stages ``send`` goes through (looked up on harkat_mail.run at call time)."""
    from harkat_mail import run

    prepare, plan, run_send = run.prepare, run.plan, run.run_send

    def prepared(*args, **kwargs):  # type: ignore[no-untyped-def]
        stages.stage = "loading the list"
        out = prepare(*args, **kwargs)
        stages.mark("list loaded, variants compiled")
        if stages.trim:
            sys.modules["pyarrow"].default_memory_pool().release_unused()
            stages.mark("  after pyarrow release_unused()")
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            stages.mark("  and glibc malloc_trim(0)")
        return out

    async def planned(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = await plan(*args, **kwargs)
        stages.mark("planned in the send log")
        stages.stage = "sending"
        return out

    async def sending(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await run_send(*args, **kwargs)
        finally:
            stages.mark("sent (the store still open)")

    run.prepare, run.plan, run.run_send = prepared, planned, sending


class Steps:
    """The traced peak inside each wrapped call, nested calls included."""

    def __init__(self) -> None:
        self.running: list[int] = []  # the peak so far of each enclosing call
        self.seen: dict[str, tuple[int, float, float]] = {}  # name: (calls, peak, kept) in MB

    def wrap(self, name: str, func):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            start, peak = tracemalloc.get_traced_memory()
            if self.running:  # the enclosing call's peak so far, before the counter resets
                self.running[-1] = max(self.running[-1], peak)
            tracemalloc.reset_peak()
            self.running.append(0)
            try:
                return func(*args, **kwargs)
            finally:
                end, peak = tracemalloc.get_traced_memory()
                mine = max(self.running.pop(), peak)
                calls, high, kept = self.seen.get(name, (0, 0.0, 0.0))
                self.seen[name] = (
                    calls + 1,
                    max(high, (mine - start) / MB),
                    kept + (end - start) / MB,
                )
                if self.running:
                    self.running[-1] = max(self.running[-1], mine)

        return wrapper

    def install(self) -> None:
        import pandas as pd

        from harkat_mail.lists import cleaning

        prepare = sys.modules["harkat_mail.run.prepare"]  # the package exports a function so named

        for name in ("read_table", "map_columns", "clean_column", "segment_mask",
                     "validate_series", "_first_of", "_per_distinct", "clean_list"):  # fmt: skip
            setattr(cleaning, name, self.wrap(f"lists.cleaning.{name}", getattr(cleaning, name)))
        prepare.load_contacts = self.wrap("lists.load_contacts", prepare.load_contacts)
        prepare.compile_campaign = self.wrap("run.compile_campaign", prepare.compile_campaign)
        pd.DataFrame.to_dict = self.wrap("pandas DataFrame.to_dict", pd.DataFrame.to_dict)

    def report(self) -> None:
        print("\ntraced peak inside each step above its start, and what it left allocated:")
        for name, (calls, high, kept) in sorted(self.seen.items(), key=lambda i: -i[1][1]):
            print(f"  {high:7.1f} MB peak, {kept:+7.1f} MB kept  {name} ({calls} calls)")


def top(title: str, snapshot: tracemalloc.Snapshot, count: int) -> None:
    print(f"\n{title}, by the line that allocated (and the harkat_mail lines that called it):")
    for stat in snapshot.statistics("traceback")[:count]:
        frame = stat.traceback[-1]  # most recent call last (tracemalloc's default order)
        ours = [f for f in stat.traceback if "harkat_mail" in f.filename]
        where = " <- ".join(
            f"{f.filename.split('harkat_mail/')[-1]}:{f.lineno}" for f in reversed(ours[-3:])
        )
        name = frame.filename.split("site-packages/")[-1].split("harkat_mail/")[-1]
        print(f"  {stat.size / MB:6.1f} MB {stat.count:9,} blocks  {name}:{frame.lineno}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=20_000, help="recipients sent when tracing")
    parser.add_argument("--no-trace", action="store_true", help="RSS only; the full send")
    parser.add_argument("--steps", action="store_true", help="peak per loading step")
    parser.add_argument("--trim", action="store_true", help="release freed memory after loading")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    trace = not args.no_trace
    stages = Stages(trace, args.trim)
    port = deliver.free_port()
    sink = subprocess.Popen([deliver.SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    os.environ["HARKAT_UNSUBSCRIBE_SECRET"] = "benchmark-secret-0123456789"
    command = ["send", "--yes"] + (["--limit", str(args.limit)] if trace else [])
    try:
        with tempfile.TemporaryDirectory(prefix="harkat-memprofile-") as tmp:
            campaign = deliver.project(Path(tmp), port, args.recipients)
            if trace:
                tracemalloc.start(25)
                threading.Thread(target=stages.watch, daemon=True).start()
            stages.mark("start")
            from harkat_mail.cli.app import main as cli

            stages.mark("harkat_mail imported")
            instrument(stages)
            steps = Steps()
            if trace and args.steps:
                steps.install()
            began = time.perf_counter()
            try:
                cli([*command, str(campaign)], standalone_mode=False)
            except SystemExit as exc:
                if exc.code:
                    raise
            took = time.perf_counter() - began
            stages.done.set()
    finally:
        sink.terminate()
        sink.wait()
    sent = f"{args.limit:,} of them sent" if trace else "all sent"
    print(f"\nlist of {args.recipients:,} recipients, {sent}, {took:.0f} s"
          f"{' under tracemalloc' if trace else ''}:")  # fmt: skip
    print("\n".join(stages.lines))
    if not trace:
        return
    if args.steps:
        steps.report()
    load = stages.best.get("loading the list")
    if load:
        top(f"at the traced peak while loading ({load[0] / MB:.0f} MB)", load[1], args.top)
    send = stages.best.get("sending")
    if send:
        top(f"at the traced peak while sending ({send[0] / MB:.0f} MB)", send[1], args.top)


if __name__ == "__main__":
    main()
