"""One run end to end: prepare, plan, dry run, the render workers, delivery, interrupt."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dryrun import dry_run
    from .prepare import Prepared, plan, prepare, rejected_by_reason
    from .progress import Progress
    from .runner import run_send
    from .send import relay_for, send, send_tests

# Imported on first use, so a render worker loads only what rendering needs.
_LAZY = {
    "dry_run": ".dryrun",
    "Prepared": ".prepare",
    "plan": ".prepare",
    "prepare": ".prepare",
    "rejected_by_reason": ".prepare",
    "Progress": ".progress",
    "run_send": ".runner",
    "relay_for": ".send",
    "send": ".send",
    "send_tests": ".send",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'harkat_mail.run' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Prepared",
    "Progress",
    "dry_run",
    "plan",
    "prepare",
    "rejected_by_reason",
    "relay_for",
    "run_send",
    "send",
    "send_tests",
]
