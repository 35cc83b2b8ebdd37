"""The send log: the only writer of delivery state, and the truth about who got what."""

from .batched import BatchedLog
from .sqlite import SendLog

__all__ = ["BatchedLog", "SendLog"]
