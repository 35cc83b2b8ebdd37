"""Progress of a send: a live bar on a terminal, plain periodic lines elsewhere."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from ..run import Progress, countdown

PLAIN_EVERY = 5.0  # seconds between plain lines
PLAIN_COUNTDOWN = 60.0  # seconds between plain lines while waiting for --at


def _line(p: Progress) -> str:
    left = max(p.total - p.done, 0)
    eta = f", about {left / p.rate:.0f} s left" if p.rate > 0 and left else ""
    return (
        f"{p.done}/{p.total}: {p.sent} sent, {p.deferred} deferred, {p.failed} failed, "
        f"{p.unknown} unknown; {p.rate:.0f} messages/s{eta}"
    )


@contextlib.contextmanager
def reporter(total: int) -> Iterator[Callable[[Progress], None]]:
    """Yield a callback for progress snapshots, shown as suits the output."""
    if not sys.stderr.isatty():
        last = [time.monotonic()]

        def plain(p: Progress) -> None:
            if time.monotonic() - last[0] >= PLAIN_EVERY:
                last[0] = time.monotonic()
                print(_line(p), file=sys.stderr, flush=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("[bold]sending"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task("send", total=total, detail="")

        def live(p: Progress) -> None:
            bar.update(
                task,
                completed=p.done,
                detail=(
                    f"sent {p.sent} · deferred {p.deferred} · failed {p.failed} · "
                    f"unknown {p.unknown} · {p.rate:.0f}/s"
                ),
            )

        yield live


@contextlib.contextmanager
def waiting(until: str) -> Iterator[Callable[[float], None]]:
    """Yield a callback for the seconds left before ``--at``: a live line on a terminal,
    a plain line a minute elsewhere."""
    if not sys.stderr.isatty():
        last = [-PLAIN_COUNTDOWN]

        def plain(left: float) -> None:
            if time.monotonic() - last[0] >= PLAIN_COUNTDOWN:
                last[0] = time.monotonic()
                print(f"waiting until {until}: {countdown(left)} left", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.console import Console

    with Console(stderr=True).status(f"waiting until {until}") as status:

        def live(left: float) -> None:
            status.update(f"waiting until {until}: {countdown(left)} left (Ctrl-C: send nothing)")

        yield live
