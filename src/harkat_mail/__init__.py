"""harkat-mail: mail-merge and newsletters for union communications staff."""

from .config import load_campaign, parse_smtp_url
from .contacts import load_contacts
from .errors import (
    ConfigError,
    ContactListError,
    DeliveryError,
    HarkatError,
    RenderError,
    SendLogError,
)
from .models import Campaign, Contact, ContactList, RunSummary, SmtpConfig, State
from .pipeline import dry_run, plan, prepare
from .send import send, send_tests
from .sendlog import SendLog

__all__ = [
    "Campaign",
    "ConfigError",
    "Contact",
    "ContactList",
    "ContactListError",
    "DeliveryError",
    "HarkatError",
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
