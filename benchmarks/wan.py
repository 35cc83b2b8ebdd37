"""Delivery across a slow link: ``harkat-mail send`` through a proxy adding 25 ms of round trip.

Needs Debian's postfix package for /usr/sbin/smtp-sink:

    apt-get install -y postfix
    PYTHONPATH=src python benchmarks/wan.py                  # 3,000 messages, 25 ms, 10 sessions
    PYTHONPATH=src python benchmarks/wan.py --rtt-ms 50 --recipients 1000
    PYTHONPATH=src python benchmarks/wan.py --layer         # + the sessions alone (see layer())

A relay across the country answers each command a round trip later. Two smtp-sink relays run
on 127.0.0.1, each behind an asyncio TCP proxy that holds every chunk for half the round trip
in each direction, in order: one advertising PIPELINING (as Postfix, Exchange, Microsoft 365,
Google and SES do), and the same with ``smtp-sink -p`` (no PIPELINING): the lock-step anchor,
measured in the same run. The real command sends the sample appeal to N synthetic members
over 10 connections (benchmarks/deliver.py's project), and every member is checked `sent`
exactly once in the send log.

Printed: messages/s (the command's own delivery-phase figure), round trips per message (the
proxy counts each time the client speaks again after the relay has answered; the greeting,
EHLO and QUIT are included, spread over all messages), and the protocol limits for this link:
10 / (4 x RTT) lock-step (MAIL, RCPT, DATA, the dot), 10 / (2 x RTT) pipelined, 10 / RTT with
the next message pipelined behind the dot (or MAIL, RCPT and BDAT in one flight).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from deliver import MESSAGE_SIZE, SINK, check, free_port, harkat_send, project  # noqa: E402

CONNECTIONS = 10  # deliver.project's campaign
GOAL = 180.0  # messages/s at 25 ms and 10 connections
MOONSHOT = 320.0  # the next message pipelined behind the dot (two sends in flight per session)


class DelayProxy:
    """Forwards 127.0.0.1:``port`` to ``target``, each chunk held ``rtt / 2`` each way, in order.

    ``turns`` counts the times a client spoke after its relay did: one round trip each.
    ``held`` / ``chunks``: how long chunks were really held (timer wake-ups on a busy machine
    come late); ``first`` / ``last``: when the first MAIL and the last chunk went through.
    """

    def __init__(self, target: int, rtt: float) -> None:
        self.target = target
        self.half = rtt / 2
        self.turns = 0
        self.held = 0.0
        self.chunks = 0
        self.first = 0.0
        self.last = 0.0
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> DelayProxy:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, "127.0.0.1", self.port), self.loop
        )
        self.server = started.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _session(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        relay_r, relay_w = await asyncio.open_connection("127.0.0.1", self.target)
        last = ["relay"]  # who spoke last: the greeting is the relay's, the first EHLO a turn
        try:
            await asyncio.gather(
                self._pump(client_r, relay_w, "client", last),
                self._pump(relay_r, client_w, "relay", last),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            for writer in (client_w, relay_w):
                writer.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        who: str,
        last: list[str],
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(chunk)
                now = self.loop.time()
                self.held += now - (due - self.half)
                self.chunks += 1
                self.last = now
                await sink.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while True:
                chunk = await source.read(1 << 16)
                if chunk and who == "client" and last[0] != "client":
                    self.turns += 1
                if not self.first and b"MAIL FROM" in chunk:
                    self.first = self.loop.time()
                if chunk:
                    last[0] = who
                queue.put_nowait((self.loop.time() + self.half, chunk))
                if not chunk:
                    break
        except ConnectionError:
            queue.put_nowait((self.loop.time() + self.half, b""))
        await forwarding


def measure(
    label: str, sink_flags: list[str], count: int, rtt: float, tmp: Path
) -> tuple[float, float]:
    """One send through a fresh sink and proxy; (messages/s, round trips per message).

    Also printed: the rate on the link (first MAIL to last reply: without the command's
    start-up) and the round trip the proxy really gave.
    """
    port = free_port()
    sink = subprocess.Popen([SINK, *sink_flags, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    time.sleep(0.5)
    proxy = DelayProxy(port, rtt).start()
    try:
        campaign = project(tmp / label, proxy.port, count)
        send = harkat_send(campaign, None)
        check(campaign, None, [send], count)
    finally:
        proxy.stop()
        sink.terminate()
        sink.wait()
    per_message = proxy.turns / count
    real_rtt = 2 * proxy.held / max(proxy.chunks, 1)
    print(
        f"{label}: {send.rate:,.0f} messages/s over {count:,} recipients, "
        f"{per_message:.2f} round trips per message ({send.wall:.1f} s wall clock including "
        "start-up; all verified sent once)\n"
        f"  on the link, first MAIL to last reply: {count / (proxy.last - proxy.first):,.0f} "
        f"messages/s; round trip really given: {real_rtt * 1000:.1f} ms "
        f"(limit at {per_message:.2f} round trips of that: "
        f"{CONNECTIONS / (per_message * real_rtt):,.0f}/s)",
        flush=True,
    )
    return send.rate, per_message


def layer(count: int, rtt: float, callers: int) -> tuple[float, float]:
    """The delivery layer alone: ``CONNECTIONS`` sessions, ``callers`` sends in flight on each.

    No render, no send log: what the sessions do once a scheduler keeps two sends in flight
    per connection (the next envelope then travels behind the previous message's dot).
    """
    from harkat_mail.delivery.session import Session
    from harkat_mail.models import OutgoingMessage, SmtpConfig

    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    time.sleep(0.5)
    proxy = DelayProxy(port, rtt).start()
    body = b"Subject: wan\r\n\r\n" + (b"x" * 78 + b"\r\n") * (MESSAGE_SIZE // 80)
    config = SmtpConfig(local=False, host="127.0.0.1", port=proxy.port, tls="none")

    async def run() -> float:
        waiting = [
            OutgoingMessage(str(i), "bench@example.org", f"m{i}@example.org", f"<{i}@b>", body)
            for i in range(count)
        ]

        async def committed(_: OutgoingMessage) -> None:
            pass

        async def connection() -> None:
            session = Session(config, None)

            async def caller() -> None:
                while waiting:
                    result = await session.send(waiting.pop(), committed)
                    if result.outcome.value != "sent":
                        raise SystemExit(f"not sent: {result}")

            await asyncio.gather(*(caller() for _ in range(callers)))
            await session.drop(polite=True)

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
        return count / (time.perf_counter() - started)

    try:
        rate = asyncio.run(run())
    finally:
        proxy.stop()
        sink.terminate()
        sink.wait()
    per_message = proxy.turns / count
    print(
        f"delivery layer alone, {callers} send{'s' * (callers > 1)} in flight per session: "
        f"{rate:,.0f} messages/s, {per_message:.2f} round trips per message",
        flush=True,
    )
    return rate, per_message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--rtt-ms", type=float, default=25.0)
    parser.add_argument("--skip-anchor", action="store_true", help="no lock-step run")
    parser.add_argument(
        "--layer",
        action="store_true",
        help="also the delivery layer alone: 1 and 2 sends in flight"
    )
    args = parser.parse_args()
    if not os.path.exists(SINK):
        raise SystemExit(f"{SINK} is missing: apt-get install -y postfix")
    rtt = args.rtt_ms / 1000
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}; "
        f"{CONNECTIONS} connections, {args.rtt_ms:g} ms round trip through the proxy"
    )
    limits = {n: CONNECTIONS / (n * rtt) for n in (4, 2, 1)}
    print(
        "protocol limits: "
        + ", ".join(f"{r:,.0f}/s at {n} round trip{'s' * (n > 1)}" for n, r in limits.items())
    )
    with tempfile.TemporaryDirectory(prefix="harkat-wan-") as folder:
        tmp = Path(folder)
        rate, trips = measure("relay with PIPELINING", [], args.recipients, rtt, tmp)
        if not args.skip_anchor:
            anchor, _ = measure("relay without PIPELINING", ["-p"], args.recipients, rtt, tmp)
            print(f"ratio: x{rate / anchor:.2f} of lock-step (same run)")
    if args.layer:
        one, _ = layer(args.recipients, rtt, 1)
        two, _ = layer(args.recipients, rtt, 2)
        print(f"ratio: two in flight x{two / one:.2f} of one (same run)")
    print(
        f"ratio: {rate / limits[2]:.2f} of the pipelined limit, "
        f"{rate / limits[1]:.2f} of the 1-round-trip limit"
    )
    goal = GOAL * 0.025 / rtt
    print(
        f"goal: >= {goal:,.0f} messages/s: {'met' if rate >= goal else 'NOT met'} "
        f"({trips:.2f} round trips per message)"
    )
    moonshot = MOONSHOT * 0.025 / rtt
    print(f"moonshot: >= {moonshot:,.0f} messages/s: {'met' if rate >= moonshot else 'NOT met'}")


if __name__ == "__main__":
    main()
