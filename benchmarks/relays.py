"""Delivery against relays that behave like real ones: greylisting, and SES-like throttling.

    python benchmarks/relays.py

- greylisting: 600 members, 30% answered postgrey's 450 on their first try, retry delays 3 and
  6 s, 4 connections. Goal: under 30 s, every member delivered exactly once. The anchor is
  the same 600 members through a relay that greylists nobody, in the same run.
- SES-like: past 40 messages/s (a sliding second) MAIL is answered
  ``454 4.7.0 Throttling failure: Maximum sending rate exceeded.``; 1,200 members, 10
  connections, no ``rate`` configured. Goal: delivered messages/s >= 0.85 of 40.
The relays are aiosmtpd servers on 127.0.0.1 in this process.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harkat_mail.delivery import DeliveryHooks, RelayThread, deliver
from harkat_mail.models import (
    DeliveryResult,
    OutgoingMessage,
    RetryPolicy,
    SmtpConfig,
)

GREYLIST = (
    "450 4.2.0 <{}>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/example.org.html"
)
DEBUG = "-v" in sys.argv
BODY = (b"x" * 70 + b"\r\n") * 30  # 2 KB in lines of 72
SES = "454 4.7.0 Throttling failure: Maximum sending rate exceeded."


class Relay:
    """Greylists every ``grey_every``-th recipient's first try; throttles past ``max_rate``."""

    def __init__(self, grey_every: int = 0, max_rate: float | None = None) -> None:
        self.grey_every = grey_every
        self.max_rate = max_rate
        self.seen: set[str] = set()
        self.accepted: deque[float] = deque()
        self.delivered: Counter[str] = Counter()
        self.throttled = 0
        self.lock = threading.Lock()

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:  # noqa: E501
        if self.max_rate is not None:
            with self.lock:
                now = time.monotonic()
                while self.accepted and self.accepted[0] < now - 1.0:
                    self.accepted.popleft()
                if len(self.accepted) >= self.max_rate:
                    self.throttled += 1
                    return SES
                self.accepted.append(now)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:  # noqa: E501
        number = int(address.split("@")[0][1:])
        with self.lock:
            first = address not in self.seen
            self.seen.add(address)
        if self.grey_every and number % self.grey_every == 0 and first:
            return GREYLIST.format(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.delivered[envelope.rcpt_tos[0]] += 1
        return "250 2.0.0 queued"


def run(relay: Relay, count: int, connections: int, policy: RetryPolicy) -> tuple[float, int]:
    """Deliver ``count`` messages through ``relay``; seconds taken and verdicts `sent`."""
    server = RelayThread(relay).start()
    config = SmtpConfig(local=False, port=server.port, tls="none", connections=connections)
    sent = 0

    async def stream() -> AsyncIterator[OutgoingMessage]:
        for i in range(count):
            yield OutgoingMessage(
                f"m{i}", "news@example.org", f"m{i}@example.org", f"<m{i}@example.org>",
                f"Subject: {i}\r\nMessage-ID: <m{i}@example.org>\r\n\r\n".encode() + BODY,
            )

    async def nothing(_: OutgoingMessage) -> None:
        return None

    def result(r: DeliveryResult, _: float | None) -> None:
        nonlocal sent
        sent += r.outcome == "sent"
        if r.outcome != "sent" and DEBUG:
            print(r)

    started = time.monotonic()
    try:
        asyncio.run(deliver(config, policy, stream(), DeliveryHooks(nothing, result)))
    finally:
        server.stop()
    return time.monotonic() - started, sent


def main() -> None:
    policy = RetryPolicy(attempts=3, delays=(3.0, 6.0))
    plain, _ = run(Relay(), 600, 4, policy)
    grey_relay = Relay(grey_every=3)  # every third member: 33% (>= the 30% asked for)
    grey, sent = run(grey_relay, 600, 4, policy)
    once = sum(1 for n in grey_relay.delivered.values() if n == 1)
    print(
        f"greylisting: 600 members, {600 // 3} greylisted once: {grey:.1f} s (goal < 30 s), "
        f"{sent} sent, {once} delivered exactly once; anchor (no greylisting): {plain:.1f} s, "
        f"ratio {grey / plain:.1f}"
    )
    ses_relay = Relay(max_rate=40)
    seconds, sent = run(ses_relay, 1200, 10, RetryPolicy(attempts=3, delays=(3.0,)))
    used = sent / seconds / 40
    print(
        f"SES-like relay (40/s): {sent} sent in {seconds:.1f} s = {sent / seconds:.1f} msg/s, "
        f"{used:.2f} of the limit (goal >= 0.85); {ses_relay.throttled} tries throttled"
    )


if __name__ == "__main__":
    main()
