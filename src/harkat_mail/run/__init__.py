"""One run end to end: prepare, plan, dry run, the render workers, delivery, interrupt."""

from .dryrun import dry_run
from .prepare import Prepared, plan, prepare, rejected_by_reason
from .send import Progress, send, send_tests

__all__ = [
    "Prepared",
    "Progress",
    "dry_run",
    "plan",
    "prepare",
    "rejected_by_reason",
    "send",
    "send_tests",
]
