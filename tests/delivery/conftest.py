"""Relays for the delivery tests beyond tests/conftest.py's (see servers.py)."""

from .servers import modern_server  # noqa: F401  (a fixture)
