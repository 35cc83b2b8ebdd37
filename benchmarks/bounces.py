"""Bounce classification: speed and quality over the corpus in tests/data/bounces.

Speed: messages classified per second over the corpus, against the anchor of merely parsing each
message with ``email.message_from_bytes`` in the same run (best of several timings each).
Quality, per recipient of the hand-checked manifest: hard bounces suppressed, other bounces
(soft, block) wrongly suppressed, complaints suppressed, and auto-replies and ordinary mail that
would suppress anyone; then the same figures for flufl.bounce alone, taking its "permanent
failures" as suppressions (what a list manager using it directly would do).

    python benchmarks/bounces.py [--rounds 5] [--tries 5]
"""

from __future__ import annotations

import argparse
import email
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flufl.bounce import scan_message

from harkat_mail.bounces import classify

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for tests/bounces/corpus.py

from tests.bounces.corpus import ROOT as CORPUS  # noqa: E402
from tests.bounces.corpus import Expected, manifest  # noqa: E402

Suppressor = Callable[[bytes], set[str]]


def ours(data: bytes) -> set[str]:
    """Addresses our classifier would suppress ("" for an unnamed recipient)."""
    return {r.address for r in classify(data).recipients if r.action == "suppress"}


def flufl_alone(data: bytes) -> set[str]:
    """Addresses flufl.bounce reports as permanently failing."""
    try:
        found = scan_message(email.message_from_bytes(data))
    except Exception:  # it raises on some malformed input; nothing suppressed then
        return set()
    return {raw.decode("ascii", "replace").lower() for raw in found}


def quality(name: str, suppress: Suppressor, corpus: dict[str, tuple[bytes, Expected]]) -> None:
    counts = {"hard": [0, 0], "other": [0, 0], "complaint": [0, 0], "quiet": [0, 0]}
    for data, expected in corpus.values():
        gone = suppress(data)
        if expected.kind in ("auto-reply", "other"):
            counts["quiet"][0] += bool(gone)
            counts["quiet"][1] += 1
        for address, cls in expected.classes.items():
            key = cls if cls in ("hard", "complaint") else "other"
            counts[key][0] += address in gone
            counts[key][1] += 1

    def pct(key: str) -> str:
        hit, total = counts[key]
        return f"{hit}/{total} = {100 * hit / max(total, 1):.1f}%"

    print(f"\n{name}")
    print(f"  hard bounces suppressed ............ {pct('hard')}   (goal >= 95%)")
    print(f"  soft/block wrongly suppressed ...... {pct('other')}   (goal <= 5%)")
    print(f"  complaints suppressed .............. {pct('complaint')}   (goal 100%)")
    print(f"  auto-replies/ordinary suppressing .. {pct('quiet')}   (goal 0)")


def _time(step: Callable[[bytes], object], samples: list[bytes], rounds: int) -> tuple[float, ...]:
    """CPU and wall seconds per message for ``rounds`` passes over ``samples``."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for data in samples:
            step(data)
    n = rounds * len(samples)
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


def speed(samples: list[bytes], rounds: int, tries: int) -> None:
    """Each figure is the best of several timings taken in turn. CPU time is the headline: on a
    shared machine, time spent waiting for a core is not the classifier's. Wall time is shown."""
    steps = {"classify": classify, "parse": email.message_from_bytes, "flufl": flufl_alone}
    best = {name: (float("inf"), float("inf")) for name in steps}
    for _ in range(tries):
        for name, step in steps.items():
            cpu, wall = _time(step, samples, rounds)
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    parse = best["parse"][0]
    print(f"{len(samples)} messages, {rounds} passes per timing, best of {tries}")
    for label, name, goal in (
        ("classify ...............", "classify", "(goal >= 2,000/s)"),
        ("anchor: parse only .....", "parse", ""),
        ("flufl.bounce alone .....", "flufl", ""),
    ):
        cpu, wall = best[name]
        print(
            f"  {label} {1 / cpu:7.0f} messages/s CPU ({1 / wall:5.0f}/s wall)"
            f"  {cpu / parse:4.1f}x a parse  {goal}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the corpus per timing")
    parser.add_argument("--tries", type=int, default=5, help="timings taken; the best counts")
    args = parser.parse_args()
    corpus = {name: ((CORPUS / name).read_bytes(), e) for name, e in sorted(manifest().items())}
    speed([data for data, _ in corpus.values()], args.rounds, args.tries)
    quality("harkat-mail bounces (this project)", ours, corpus)
    quality("flufl.bounce alone (permanent failures suppressed)", flufl_alone, corpus)


if __name__ == "__main__":
    main()
