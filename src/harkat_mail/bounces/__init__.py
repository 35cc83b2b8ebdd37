"""Bounces and complaints: read returned mail, classify it, say what to do with each member."""

from .classify import BouncedRecipient, Verdict, classify, to_json
from .readers import iter_messages

__all__ = ["BouncedRecipient", "Verdict", "classify", "iter_messages", "to_json"]
