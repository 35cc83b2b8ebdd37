"""harkat-mail: mail-merge and newsletters for union communications staff.

Everything a command does can be done from Python; the library keeps the same rules.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    ContactListError,
    DeliveryError,
    HarkatError,
    RenderError,
    SendLogError,
)
from .models import Campaign, Contact, ContactList, RunSummary, SmtpConfig, State

if TYPE_CHECKING:
    from .campaign import load_campaign, parse_smtp_url
    from .lists import load_contacts
    from .run import Prepared, dry_run, plan, prepare, send, send_tests
    from .store import SendLog

# Imported on first use: a render worker process needs neither pandas nor the send log, and
# importing them costs it about 100 MB.
_LAZY = {
    "load_campaign": ".campaign",
    "parse_smtp_url": ".campaign",
    "load_contacts": ".lists",
    "Prepared": ".run",
    "dry_run": ".run",
    "plan": ".run",
    "prepare": ".run",
    "send": ".run",
    "send_tests": ".run",
    "SendLog": ".store",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'harkat_mail' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "Campaign",
    "ConfigError",
    "Contact",
    "ContactList",
    "ContactListError",
    "DeliveryError",
    "HarkatError",
    "Prepared",
    "RenderError",
    "RunSummary",
    "SendLog",
    "SendLogError",
    "SmtpConfig",
    "State",
    "dry_run",
    "load_campaign",
    "load_contacts",
    "parse_smtp_url",
    "plan",
    "prepare",
    "send",
    "send_tests",
]
