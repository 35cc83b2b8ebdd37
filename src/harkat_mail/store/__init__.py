"""The send log: the only writer of delivery state, and the truth about who got what.

``open_store`` takes a file path (SQLite, the embedded default) or a ``postgresql://`` URL
(one database shared by senders on many machines).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SendLogError
from ..models import send_log_kind
from .asqlite import SqliteStore
from .batched import BatchedLog
from .protocol import Claim, RunInfo, RunRow, Store
from .sqlite import SendLog


def is_url(location: str | Path) -> bool:
    """True for a PostgreSQL URL, False for a SQLite file path; refuses anything else."""
    if isinstance(location, Path):
        return False
    try:
        return send_log_kind(location) == "postgresql"
    except ValueError as why:
        raise SendLogError(f"send log: {why}") from None


async def open_store(location: str | Path, read_only: bool = False) -> Store:
    """The store at ``location``; ``read_only`` never creates or changes it."""
    if is_url(location):
        from .postgres import PostgresStore  # psycopg is loaded only when asked for

        scheme, _, rest = str(location).strip().partition("://")
        return await PostgresStore.open(f"{scheme.lower()}://{rest}", read_only=read_only)
    return SqliteStore(Path(location), read_only=read_only)


__all__ = [
    "BatchedLog",
    "Claim",
    "RunInfo",
    "RunRow",
    "SendLog",
    "SqliteStore",
    "Store",
    "is_url",
    "open_store",
]
