"""`sending` is committed before DATA: the relay, reading the log file itself, always sees it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import RecordingHandler
from tests.conftest import TestServer as RelayServer  # not a test class

from .conftest import read_rows, send


@dataclass
class LogReadingHandler(RecordingHandler):
    """Records, when each DATA command arrives, the recipient's state in the send-log file."""

    log: Path = Path("unset")
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def action(self, address: str, stage: str) -> str | None:
        if stage == "data-cmd":  # before the 354 reply, so before any message byte
            db = sqlite3.connect(f"file:{self.log}?mode=ro", uri=True)  # a separate reader
            try:
                row = db.execute(
                    "SELECT state FROM recipient WHERE lower(email) = lower(?)", (address,)
                ).fetchone()
            finally:
                db.close()
            with self.lock:
                self.seen.append((address.lower(), row[0] if row else None))
        return super().action(address, stage)


def test_every_recipient_reads_sending_in_the_file_when_data_arrives(
    project: Path, log_path: Path
) -> None:
    """For each message, including a retry after a 451 at DATA, the file said `sending` first."""
    with project.open("a", encoding="utf-8") as yaml:
        yaml.write("retry: {attempts: 3, delays: [0.2]}\n")  # retry within the test's time
    handler = LogReadingHandler(log=log_path, rules={"nadia": ("data-cmd", "451 4.3.0 busy", 1)})
    server = RelayServer(handler).start()
    try:
        result = send(project, server.port)
    finally:
        server.stop()
    assert result.exit_code in (0, 1), result.output
    sent = {
        email.lower()
        for (email,) in read_rows(log_path, "SELECT email FROM recipient WHERE state = 'sent'")
    }
    assert sent and {m.rcpt_tos[0].lower() for m in handler.messages} == sent
    assert {state for _, state in handler.seen} == {"sending"}
    data_commands = Counter(address for address, _ in handler.seen)
    assert set(data_commands) == sent
    assert any(n == 2 for address, n in data_commands.items() if "nadia" in address)
