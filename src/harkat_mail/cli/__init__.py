"""The command line: thin commands over the library; a ``HarkatError`` becomes one line."""

from . import bounces, inspect, send, serve  # noqa: F401  (each registers its commands on main)
from .app import main

__all__ = ["main"]
