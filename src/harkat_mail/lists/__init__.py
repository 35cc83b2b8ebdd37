"""Member lists: read, decode, map headers, clean, validate, dedupe, suppress, consent, segment."""

from .addresses import check_address
from .cleaning import load_contacts, normalise_language
from .suppression import add_suppression, read_suppressions
from .workbook import write_workbook

__all__ = [
    "add_suppression",
    "check_address",
    "load_contacts",
    "normalise_language",
    "read_suppressions",
    "write_workbook",
]
