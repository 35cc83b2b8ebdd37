"""The project's exceptions. Every message starts with the file, row or recipient it is about."""

from __future__ import annotations


class HarkatError(Exception):
    """Base of every error harkat-mail raises on purpose; the CLI prints it as one line."""

    exit_code = 2


class ConfigError(HarkatError):
    """The campaign YAML is missing, malformed, or has a key of the wrong type."""


class ContactListError(HarkatError):
    """A member list cannot be read or lacks a required column."""


class RenderError(HarkatError):
    """A template is missing, does not compile, or uses a variable the context lacks."""


class DeliveryError(HarkatError):
    """The relay could not be reached or refused the session (not a per-recipient verdict)."""

    exit_code = 1


class RelayUnavailable(DeliveryError):
    """The relay is unreachable or refuses us (connection, TLS, authentication); nothing burned."""

    exit_code = 3


class BounceSourceError(HarkatError):
    """A bounce mailbox or message file cannot be found or read."""


class SendLogError(HarkatError):
    """The send log cannot be opened, or refuses a resume whose inputs changed."""


class ClaimLost(SendLogError):
    """Another run took this run's rows over (its lease expired): stop, write nothing more."""
