"""`bounces process` speed: N returned messages in a Maildir applied to the sample campaign.

The sample campaign (campaigns/sept2018.yaml, with ``bounces: {verp: true}``) is sent into its
local outbox in a temporary copy of the project, so its SQLite send log holds real rows. Then
N delivery status notifications, each to a member's VERP address (7 in 10 soft, 2 block, 1
hard; a complaint every 50th), go into a Maildir, and ``process_bounces`` reads, attributes,
applies and moves them all. The anchor, measured in the same run: ``classify`` alone over the
same N messages read from the same files. The ratio says what reading, attribution, the send
log and the moves add to classification.

    python benchmarks/bounce_process.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harkat_mail.bounces import classify
from harkat_mail.bounces.readers import iter_messages
from harkat_mail.campaign import load_campaign
from harkat_mail.mail.verp import Verp
from harkat_mail.run.bounces import process_bounces

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for tests/bounces/dsn.py

from tests.bounces import dsn  # noqa: E402

BOUNCES = "bounces@cupw.example.org"
KINDS = [("5.2.2", "552 5.2.2 Mailbox full; over quota")] * 7 + [
    ("5.7.1", "554 5.7.1 Service unavailable; client blocked using zen.spamhaus.org")
] * 2 + [("5.1.1", "550 5.1.1 User unknown")]


def _project(folder: Path) -> Path:
    """A copy of the sample project with VERP on, sent into its local outbox."""
    for name in ("campaigns", "lists", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    yaml = folder / "campaigns" / "sept2018.yaml"
    bounces = f"smtp: local\nbounces: {{address: {BOUNCES}, verp: true}}\n"
    yaml.write_text(yaml.read_text().replace("smtp: local\n", bounces))
    subprocess.run(
        [sys.executable, "-m", "harkat_mail", "send", str(yaml), "--yes"],
        check=True, capture_output=True, env=os.environ,
    )
    return yaml


def _maildir(folder: Path, yaml: Path, count: int) -> Path:
    campaign = load_campaign(yaml)
    verp = Verp(BOUNCES, os.environ["HARKAT_UNSUBSCRIBE_SECRET"].encode())
    with sqlite3.connect(campaign.send_log) as db:
        query = "SELECT key, email FROM recipient WHERE state = 'sent' ORDER BY key"
        rows = db.execute(query).fetchall()
    box = folder / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    for n in range(count):
        key, email = rows[n % len(rows)]
        to = verp.address(campaign.name, key)
        status, said = KINDS[n % len(KINDS)]
        data = dsn.complaint(to, email) if n % 50 == 49 else dsn.dsn(to, email, status, said)
        (box / "new" / f"{n:07d}.bench:2,").write_bytes(data)
    return box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages in the Maildir")
    args = parser.parse_args()
    os.environ.setdefault("HARKAT_UNSUBSCRIBE_SECRET", "benchmark-secret-" + "x" * 32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        yaml = _project(folder)
        box = _maildir(folder, yaml, args.messages)

        cpu, wall = time.process_time(), time.perf_counter()
        for _, data in iter_messages(box):
            classify(data)
        anchor = (time.process_time() - cpu, time.perf_counter() - wall)

        campaign = load_campaign(yaml)
        cpu, wall = time.process_time(), time.perf_counter()
        summary = asyncio.run(process_bounces(campaign, str(box)))
        spent = (time.process_time() - cpu, time.perf_counter() - wall)
        assert summary.read == args.messages and summary.moved == args.messages, summary.left[:3]

    n = args.messages
    print(f"{n} DSNs in a Maildir, sample campaign ({summary.sent} sent), SQLite send log")
    applied = dict(summary.applied)
    print(f"  applied: {applied}; {summary.suppressed} suppressed; {summary.moved} moved")
    for label, (cpu, wall) in (("bounces process .....", spent), ("anchor: classify only", anchor)):
        print(f"  {label} {n / wall:7.0f} messages/s wall ({n / cpu:6.0f}/s CPU)")
    print(f"  process / classify: {spent[1] / anchor[1]:.1f}x the wall time")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
