"""harkat-mail: mail-merge and newsletters for union communications staff.

Everything a command does can be done from Python; the library keeps the same rules.
"""

from .campaign import load_campaign, parse_smtp_url
from .errors import (
    ConfigError,
    ContactListError,
    DeliveryError,
    HarkatError,
    RenderError,
    SendLogError,
)
from .lists import load_contacts
from .models import Campaign, Contact, ContactList, RunSummary, SmtpConfig, State
from .run import Prepared, dry_run, plan, prepare, send, send_tests
from .store import SendLog

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
