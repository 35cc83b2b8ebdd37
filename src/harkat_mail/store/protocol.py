"""What every send-log store does: the ``Store`` protocol, with SQLite and PostgreSQL behind it.

A run registers itself under a lease, claims batches of due rows (atomically: two runs never
hold the same member), marks ``sending`` and writes verdicts only on rows it holds, renews
its lease while alive, and releases what it still holds when it ends. A run whose lease
expired is taken over by the next claim: its ``sending`` rows become ``unknown`` (the message
may have arrived), the rest become due again, and its later writes are refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..models import Contact, DeliveryResult, Grant, Limits, Outcome, Rejected, State

# A state change: a key going to `sending`, or a verdict with the time of its next try.
Change = str | tuple[DeliveryResult, float | None]
# The report's columns in their order since before migrations (version 2 appended consent,
# version 5 the relay, version 6 the bounce).
REPORT_COLUMNS = (
    "campaign, key, email, member_id, language, source, row, state, reason, attempts, code,"
    " reply, message_id, consent, next_attempt_at, created_at, updated_at, relay,"
    " bounce_class, bounce_status, bounce_diagnostic"
)
OUTCOME_STATE = {
    Outcome.SENT: State.SENT,
    Outcome.DEFERRED: State.DEFERRED,
    Outcome.FAILED: State.FAILED,
    Outcome.UNKNOWN: State.UNKNOWN,
}
SUPPRESSED = "suppressed: unsubscribed or bounced (recorded in the send log)"
LOST = "another run took this run's rows over (its lease expired); this run stops"


def code_patterns(codes: Sequence[str]) -> list[str]:
    """Reply-code filters (``550``, ``55x``, ``5xx``) as SQL LIKE patterns on the code's text."""
    return [code.lower().replace("x", "_") for code in codes]


@dataclass(frozen=True)
class RunInfo:
    """Who is sending: one ``harkat-mail send`` process on one machine."""

    id: str
    campaign: str
    host: str
    pid: int
    lease: float  # seconds a run may go silent before others take its rows over


@dataclass(frozen=True)
class Claim:
    """A row a run now holds, with the tries already made (across runs)."""

    key: str
    attempts: int
    throttled: int = 0  # of those attempts, answered by throttling
    first_tried_at: float | None = None


@dataclass(frozen=True)
class RunRow:
    """A run as ``status`` shows it."""

    id: str
    host: str
    pid: int
    started_at: float
    lease_until: float
    held: int
    expired: bool


class Store(Protocol):
    """The send log: the only writer of delivery state, and the truth about who got what."""

    location: str  # the file or the URL (never with a password), for messages

    async def close(self) -> None: ...

    async def check_inputs(self, campaign: str, inputs: Mapping[str, str], force: bool) -> None:
        """Refuse to resume when the YAML, list or template changed, unless forced.

        Forced, the changed inputs are recorded and `deferred` rows no run holds are due at
        once: their wait was set under the old inputs (a relay since fixed, say).
        """
        ...

    async def plan(
        self,
        campaign: str,
        contacts: Sequence[Contact],
        rejected: Sequence[Rejected],
        message_ids: Mapping[str, str],
    ) -> None:
        """Insert a `pending` row per new contact, a `skipped` row per rejected row (idempotent)."""
        ...

    async def start_run(self, run: RunInfo) -> None: ...

    async def renew(self, run_id: str, lease: float) -> bool:
        """Extend the lease; False when another run has taken this one's rows over."""
        ...

    async def finish_run(self, run_id: str) -> None:
        """Release the rows still held (deferred, claimed but not started) and end the run."""
        ...

    async def expire(self, run_ids: Sequence[str]) -> None:
        """End these runs' leases now (their processes are known to be gone)."""
        ...

    async def recover(self, campaign: str) -> int:
        """Take over runs whose lease expired; the number of their rows now `unknown`."""
        ...

    async def claim(
        self, campaign: str, run_id: str, limit: int, retry_unknown: bool
    ) -> list[Claim]:
        """Up to ``limit`` due rows, unheld until now, in list order; raises when taken over."""
        ...

    async def release(self, campaign: str, run_id: str, keys: Sequence[str]) -> None: ...

    async def skip_suppressed(self, campaign: str, run_id: str | None) -> list[str]:
        """Rows not yet sent whose address is now suppressed in the store become `skipped`.

        ``run_id`` None: the rows no run holds; else the rows that run holds. The keys skipped.
        """
        ...

    async def count_due(self, campaign: str, retry_unknown: bool) -> int: ...

    async def apply(self, campaign: str, run_id: str, changes: Sequence[Change]) -> list[str]:
        """Apply changes in one transaction, only to rows this run holds; the keys refused."""
        ...

    async def take(self, relay: str, want: int, limits: Limits) -> Grant:
        """Take up to ``want`` messages from the relay's shared budget."""
        ...

    async def reopen_failed(self, campaign: str, codes: Sequence[str]) -> int:
        """`failed` rows no run holds (with a reply code matching ``codes``, e.g. ``5xx``,
        ``550``; every one when empty) become `pending` with fresh attempts; how many."""
        ...

    async def next_attempt(self, campaign: str) -> float | None:
        """When the earliest `deferred` row is due (epoch seconds); None without one."""
        ...

    async def counts(self, campaign: str) -> dict[str, int]: ...

    async def skipped_reasons(self, campaign: str) -> dict[str, int]: ...

    async def last_errors(
        self, campaign: str, limit: int = 5
    ) -> list[tuple[str, str, int | None, str]]: ...

    def rows(self, campaign: str) -> AsyncIterator[dict[str, Any]]: ...

    async def runs(self, campaign: str) -> list[RunRow]:
        """Runs working on the campaign now, and runs whose lease expired unnoticed."""
        ...

    async def suppressions(self) -> set[str]:
        """Addresses stored as suppressed (unsubscribes, bounces), lower-cased."""
        ...

    async def add_suppression(self, address: str, why: str, list_id: str) -> bool:
        """Record a suppression durably; False when it was there already."""
        ...

    async def mark_bounced(
        self, campaign: str, key: str, bounce_class: str, status: str, diagnostic: str
    ) -> bool:
        """Record a bounce (class hard, soft or block) or a complaint on a member's row.

        Only a sent (or unknown, or refused) row takes it, and a later verdict replaces an
        earlier one only when graver (see ``bouncerules``). False when nothing changed.
        """
        ...

    async def soft_bounce(self, address: str, day: int) -> int:
        """Count a soft bounce on ``day`` (+1 a day at most, forgotten after 30); the score."""
        ...

    async def bounce_seen(self, bounce_id: str) -> bool:
        """Whether the bounce message with this id was processed already."""
        ...

    async def remember_bounces(self, bounce_ids: Sequence[str], campaign: str) -> None:
        """Note bounce messages as processed, all at once."""
        ...

    async def bounce_counts(self, campaign: str) -> dict[str, int]:
        """Bounced and complained rows of a campaign per class."""
        ...
