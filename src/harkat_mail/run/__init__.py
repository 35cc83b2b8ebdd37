"""One run end to end: prepare, plan, dry run, the render workers, delivery, interrupt.

Imported eagerly: ``send`` and ``prepare`` are also the names of modules here, and the
functions must win. Nothing here may import pandas at module level (render workers import
this package): the list is loaded inside ``prepare``.
"""

from .dryrun import dry_run
from .prepare import Prepared, plan, prepare, rejected_by_reason
from .progress import Progress
from .runner import run_send
from .schedule import Clock, SystemClock, countdown, parse_at, wait_until, zone_label
from .send import relay_for, relays_for, send
from .testsend import send_tests, tests_outbox

__all__ = [
    "Clock",
    "Prepared",
    "Progress",
    "SystemClock",
    "countdown",
    "dry_run",
    "parse_at",
    "plan",
    "prepare",
    "rejected_by_reason",
    "relay_for",
    "relays_for",
    "run_send",
    "send",
    "send_tests",
    "tests_outbox",
    "wait_until",
    "zone_label",
]
