"""A snapshot of a sending run, for progress displays."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run for progress displays."""

    total: int
    sent: int
    deferred: int
    failed: int
    unknown: int
    elapsed: float

    @property
    def done(self) -> int:
        """Recipients with a verdict for now (a deferred one may still be retried)."""
        return self.sent + self.failed + self.unknown + self.deferred

    @property
    def rate(self) -> float:
        """Verdicts per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0
