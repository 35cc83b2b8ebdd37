"""Runs on this machine that died: taken over at once instead of after their lease.

A run killed outright (SIGKILL, a power cut of a laptop, an OOM kill) cannot release its rows.
Another machine must wait for its lease to expire; a run on the same host can see that the
process is gone and take the rows over now. A reused process id only delays that: the lease
still expires.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
from pathlib import Path

from ..store import Store


def _machine() -> str:
    """Which machine and process namespace this is: a host name alone is not enough (cloned
    VMs and containers share names while their process ids are their own)."""
    parts = []
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        with contextlib.suppress(OSError):
            parts.append(Path(path).read_text(encoding="ascii").strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    if not parts:  # nothing to tell machines apart by: never take over by liveness
        parts.append(uuid.uuid4().hex)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


# What a run records as its host: the name people know, and the machine it really is.
HOST = f"{socket.gethostname()} [{_machine()}]"


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
