"""Peak memory of a process tree: RSS summed over a process and all its descendants.

``getrusage(RUSAGE_CHILDREN).ru_maxrss`` gives the largest single process, not what a send
costs the machine: the sending process plus its render worker(s) (and multiprocessing's
resource tracker). So a thread samples /proc every 0.2 s, walks the tree from the root pid
and sums VmRSS; it keeps the peak sum and each process's own peak (by pid, with its command
line) to show who holds what. A 0.2 s sample can miss a peak shorter than that.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

INTERVAL = 0.2  # seconds between samples


def _children() -> dict[int, list[int]]:
    """Every process's children, from the ppid in /proc/PID/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after the command, which may hold ')'
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (no VmRSS line)


def _label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "harkat_mail send" in text:
        return "send"
    if "spawn_main" in text:
        return "worker (multiprocessing spawn)"
    if "resource_tracker" in text:
        return "resource tracker"
    return text[:60]


@dataclass
class TreeRss:
    """Samples the tree under ``root`` until ``stop``; peaks in kB."""

    root: int
    peak_kb: int = 0
    samples: int = 0
    per_process: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid: (label, peak)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        tree, total, todo = _children(), 0, [self.root]
        while todo:
            pid = todo.pop()
            todo.extend(tree.get(pid, ()))
            kb = _rss_kb(pid)
            total += kb
            label, peak = self.per_process.get(pid) or (_label(pid), 0)
            self.per_process[pid] = (label, max(peak, kb))
        self.peak_kb = max(self.peak_kb, total)
        self.samples += 1

    def _loop(self) -> None:
        while not self._done.wait(INTERVAL):
            self.sample()

    def start(self) -> TreeRss:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def breakdown(self) -> str:
        """Each process's own peak, largest first (the peaks need not be simultaneous)."""
        rows = sorted(self.per_process.values(), key=lambda r: -r[1])
        return ", ".join(f"{label} {kb / 1024:.0f} MB" for label, kb in rows if kb)
