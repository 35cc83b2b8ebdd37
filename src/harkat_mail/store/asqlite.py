"""The SQLite send log as an asynchronous ``Store``: every call runs on one worker thread.

SQLite calls are short but a commit waits for fsync; on a thread of its own the event loop
keeps serving SMTP connections meanwhile. One thread also means one connection user at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ..models import Contact, Grant, Limits, Rejected
from .protocol import Change, Claim, RunInfo, RunRow
from .sqlite import SendLog

P = ParamSpec("P")
R = TypeVar("R")


class SqliteStore:
    """A ``Store`` over one SQLite file (the embedded default: no server to set up)."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.log = SendLog(path, read_only=read_only)
        self.location = str(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sendlog")

    async def _call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: func(*args, **kwargs))

    async def close(self) -> None:
        await self._call(self.log.close)
        self._thread.shutdown(wait=True)

    async def check_inputs(self, campaign: str, inputs: Mapping[str, str], force: bool) -> None:
        await self._call(self.log.check_inputs, campaign, inputs, force)

    async def plan(
        self,
        campaign: str,
        contacts: Sequence[Contact],
        rejected: Sequence[Rejected],
        message_ids: Mapping[str, str],
    ) -> None:
        await self._call(self.log.plan, campaign, contacts, rejected, message_ids)

    async def start_run(self, run: RunInfo) -> None:
        await self._call(self.log.start_run, run)

    async def renew(self, run_id: str, lease: float) -> bool:
        return await self._call(self.log.renew, run_id, lease)

    async def finish_run(self, run_id: str) -> None:
        await self._call(self.log.finish_run, run_id)

    async def expire(self, run_ids: Sequence[str]) -> None:
        await self._call(self.log.expire, run_ids)

    async def recover(self, campaign: str) -> int:
        return await self._call(self.log.recover, campaign)

    async def claim(
        self, campaign: str, run_id: str, limit: int, retry_unknown: bool
    ) -> list[Claim]:
        return await self._call(self.log.claim, campaign, run_id, limit, retry_unknown)

    async def release(self, campaign: str, run_id: str, keys: Sequence[str]) -> None:
        await self._call(self.log.release, campaign, run_id, keys)

    async def skip_suppressed(self, campaign: str, run_id: str | None) -> list[str]:
        return await self._call(self.log.skip_suppressed, campaign, run_id)

    async def count_due(self, campaign: str, retry_unknown: bool) -> int:
        return await self._call(self.log.count_due, campaign, retry_unknown)

    async def apply(self, campaign: str, run_id: str, changes: Sequence[Change]) -> list[str]:
        return await self._call(self.log.apply, campaign, run_id, changes)

    async def take(self, relay: str, want: int, limits: Limits) -> Grant:
        return await self._call(self.log.take, relay, want, limits)

    async def reopen_failed(self, campaign: str, codes: Sequence[str]) -> int:
        return await self._call(self.log.reopen_failed, campaign, codes)

    async def next_attempt(self, campaign: str) -> float | None:
        return await self._call(self.log.next_attempt, campaign)

    async def counts(self, campaign: str) -> dict[str, int]:
        return await self._call(self.log.counts, campaign)

    async def skipped_reasons(self, campaign: str) -> dict[str, int]:
        return await self._call(self.log.skipped_reasons, campaign)

    async def last_errors(
        self, campaign: str, limit: int = 5
    ) -> list[tuple[str, str, int | None, str]]:
        return await self._call(self.log.last_errors, campaign, limit)

    async def rows(self, campaign: str) -> AsyncIterator[dict[str, Any]]:
        for row in await self._call(lambda: list(self.log.rows(campaign))):
            yield row

    async def runs(self, campaign: str) -> list[RunRow]:
        return await self._call(self.log.runs, campaign)

    async def suppressions(self) -> set[str]:
        return await self._call(self.log.suppressions)

    async def add_suppression(self, address: str, why: str, list_id: str) -> bool:
        return await self._call(self.log.add_suppression, address, why, list_id)

    async def mark_bounced(
        self, campaign: str, key: str, bounce_class: str, status: str, diagnostic: str
    ) -> bool:
        return await self._call(
            self.log.mark_bounced, campaign, key, bounce_class, status, diagnostic
        )

    async def soft_bounce(self, address: str, day: int) -> int:
        return await self._call(self.log.soft_bounce, address, day)

    async def bounce_seen(self, bounce_id: str) -> bool:
        return await self._call(self.log.bounce_seen, bounce_id)

    async def remember_bounces(self, bounce_ids: Sequence[str], campaign: str) -> None:
        await self._call(self.log.remember_bounces, bounce_ids, campaign)

    async def bounce_counts(self, campaign: str) -> dict[str, int]:
        return await self._call(self.log.bounce_counts, campaign)
