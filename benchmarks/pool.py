"""A pool of relays against one relay: what fanning one stream out to two relays costs.

Needs Debian's postfix package for /usr/sbin/smtp-sink:

    python benchmarks/pool.py [--recipients 5000] [--rounds 3]

Each round, back to back in alternating order, runs the real ``harkat-mail send`` on the
sample appeal over N synthetic members (benchmarks/deliver.py's project):

- the anchor: one relay (smtp-sink A) with 10 connections;
- a pool: smtp-sink A and smtp-sink B, 5 connections each, weights 1 and 1.

Both move the same number of connections, so the ratio is the pool's own cost (the pump and
per-relay hand-offs). Every send is checked in its send log: all `sent`, and for the pool the
`relay` column splits the members half and half (within one).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import deliver  # noqa: E402  (benchmarks/deliver.py: the project and the send)


def as_pool(campaign: Path, first: int, second: int) -> None:
    """Rewrite the campaign's one relay as a pool of two, 5 connections each."""
    text = campaign.read_text(encoding="utf-8")
    one = f"smtp:\n  host: 127.0.0.1\n  port: {first}\n  tls: none\n  connections: 10"
    assert one in text
    relays = "".join(
        f"  - {{host: 127.0.0.1, port: {port}, tls: none, connections: 5, weight: 1}}\n"
        for port in (first, second)
    )
    campaign.write_text(text.replace(one + "\n", "smtp:\n" + relays), encoding="utf-8")


def shares(campaign: Path) -> dict[str, int]:
    """Sent members per relay, from the campaign's SQLite send log."""
    from harkat_mail.campaign import load_campaign

    db = sqlite3.connect(load_campaign(campaign).send_log)
    try:
        rows = db.execute("SELECT relay, COUNT(*) FROM recipient WHERE state = 'sent' GROUP BY 1")
        return dict(rows.fetchall())
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(deliver.SINK):
        raise SystemExit(f"{deliver.SINK} is missing: apt-get install -y postfix")
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    ports = [deliver.free_port(), deliver.free_port()]
    sinks = [
        subprocess.Popen([deliver.SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
        for port in ports
    ]
    time.sleep(0.5)
    rates: dict[str, list[float]] = {"one relay": [], "pool of two": []}
    try:
        with tempfile.TemporaryDirectory(prefix="harkat-pool-") as tmp:
            for round_ in range(args.rounds):
                order = list(rates) if round_ % 2 == 0 else list(reversed(rates))
                for kind in order:
                    folder = Path(tmp) / f"{kind.replace(' ', '-')}-{round_}"
                    folder.mkdir()
                    campaign = deliver.project(folder, ports[0], args.recipients)
                    if kind == "pool of two":
                        as_pool(campaign, *ports)
                    sent = deliver.harkat_send(campaign, None)
                    deliver.check(campaign, None, [sent], args.recipients)
                    split = shares(campaign)
                    if kind == "pool of two" and max(split.values()) - min(split.values()) > 1:
                        raise SystemExit(f"the pool did not split the members evenly: {split}")
                    rates[kind].append(sent.rate)
                    print(f"round {round_ + 1}, {kind}: {sent.rate:.0f} messages/s {split}")
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait()
    anchor = statistics.median(rates["one relay"])
    for kind, values in rates.items():
        median = statistics.median(values)
        print(f"{kind}: median {median:.0f} messages/s, {median / anchor:.2f} x one relay")


if __name__ == "__main__":
    main()
