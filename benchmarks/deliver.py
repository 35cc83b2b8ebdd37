"""Delivery throughput end to end: ``harkat-mail send`` into Postfix's smtp-sink.

Needs Debian's postfix package for /usr/sbin/smtp-sink and /usr/sbin/smtp-source:

    apt-get install -y postfix        # then: python benchmarks/deliver.py

Starts smtp-sink on 127.0.0.1, sends the sample appeal to N synthetic members with 10
connections (render, MIME, SMTP and the send log all included), then runs
``smtp-source -s 10`` with the same message count and size in the same run. Prints both
messages/s and their ratio, and the peak RSS of a larger send (--rss-recipients).
With --dkim every message is also DKIM-signed (a throwaway 2048-bit key).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SINK, SOURCE = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"


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
    """The sample campaign over ``count`` synthetic members, relayed to 127.0.0.1:port."""
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
    if dkim:
        text += dkim_block(folder)
    campaign = folder / "campaigns" / "sept2018.yaml"
    campaign.write_text(text, encoding="utf-8")
    return campaign


def harkat_send(campaign: Path) -> tuple[float, float, int]:
    """Run the real command; return (messages/s it printed, wall seconds, its peak RSS in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    env = {**os.environ, "HARKAT_UNSUBSCRIBE_SECRET": "benchmark-secret-0123456789"}
    result = subprocess.run(
        [sys.executable, "-m", "harkat_mail", "send", str(campaign), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"harkat-mail send failed:\n{result.stdout}\n{result.stderr}")
    rate = float(re.search(r"([\d.]+) messages/s", result.stdout).group(1))  # type: ignore[union-attr]
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return rate, wall, max(rss, before) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rss-recipients", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every message")
    args = parser.parse_args()
    for tool in (SINK, SOURCE):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y postfix")
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    time.sleep(0.5)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            campaign = project(Path(tmp), port, args.recipients, args.dkim)
            rate, wall, _ = harkat_send(campaign)
        message_size = 10_000  # the sample's messages are ~10 KB
        started = time.perf_counter()
        subprocess.run(
            [
                SOURCE,
                "-s",
                "10",
                "-m",
                str(args.recipients),
                "-l",
                str(message_size),
                f"127.0.0.1:{port}",
            ],
            check=True,
        )
        source_rate = args.recipients / (time.perf_counter() - started)
        print(
            f"harkat-mail send: {rate:,.0f} messages/s over {args.recipients:,} recipients "
            f"(10 connections{', DKIM-signed' if args.dkim else ''}; "
            f"{wall:.1f} s wall clock including start-up)"
        )
        print(
            f"smtp-source -s 10 (same run, {message_size // 1000} KB messages): "
            f"{source_rate:,.0f} messages/s"
        )
        print(f"ratio: {rate / source_rate:.2f} of smtp-source")
        if args.rss_recipients:
            with tempfile.TemporaryDirectory() as tmp:
                campaign = project(Path(tmp), port, args.rss_recipients, args.dkim)
                big_rate, big_wall, rss = harkat_send(campaign)
            print(
                f"peak RSS of a {args.rss_recipients:,}-recipient send: {rss} MB "
                f"({big_rate:,.0f} messages/s, {big_wall:.0f} s)"
            )
        met = rate >= 1000 and rate / source_rate >= 0.25
        print(
            f"goal: >= 1,000 messages/s and >= 0.25 of smtp-source: {'met' if met else 'NOT met'}"
        )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
