"""Runs on this machine that died: taken over at once instead of after their lease.

A run killed outright (SIGKILL, a power cut of a laptop, an OOM kill) cannot release its rows.
Another machine must wait for its lease to expire; a run on the same host can see that the
process is gone and take the rows over now. A reused process id only delays that: the lease
still expires.
"""

from __future__ import annotations

import os
import socket

from ..store import Store

HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


async def expire_dead_local_runs(store: Store, campaign: str) -> int:
    """End the leases of this host's runs whose process is gone; how many there were."""
    dead = [r.id for r in await store.runs(campaign) if r.host == HOST and not _alive(r.pid)]
    if dead:
        await store.expire(dead)
    return len(dead)
