"""Delivery: SMTP sessions over aiosmtplib, the scheduler, rate limits, the capture relay."""

from .probe import RelayOffer, probe
from .relay import RelayThread, local_relay
from .scheduler import DeliveryHooks, deliver
from .session import password_for

__all__ = [
    "DeliveryHooks",
    "RelayOffer",
    "RelayThread",
    "deliver",
    "local_relay",
    "password_for",
    "probe",
]
