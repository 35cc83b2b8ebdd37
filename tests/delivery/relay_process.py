"""A misbehaving test relay in a process of its own, timed like a real relay (no shared GIL).

Usage: ``python -m tests.delivery.relay_process RULES_JSON``; prints the port, serves until
stdin closes, then prints the recipients of the messages it accepted as a JSON list.
"""

from __future__ import annotations

import json
import sys

from tests.conftest import RecordingHandler, TestServer


def main() -> None:
    rules = {needle: tuple(rule) for needle, rule in json.loads(sys.argv[1]).items()}
    handler = RecordingHandler(rules=rules)
    server = TestServer(handler).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()
    print(json.dumps([m.rcpt_tos[0] for m in handler.messages]), flush=True)


if __name__ == "__main__":
    main()
