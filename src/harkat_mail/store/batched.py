"""Group commit for a send run: many connections' changes share one transaction.

``sending`` waits until its row is committed (the rule: committed before DATA) and fails with
``ClaimLost`` when the run no longer holds the row; verdicts are queued and committed with the
next batch. A store failure is kept: every later ``sending`` fails at once (no DATA without a
committed row), ``on_failure`` tells the run to stop, and ``close`` raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ..errors import ClaimLost, HarkatError, SendLogError
from ..models import DeliveryResult
from .protocol import Change, Store


class BatchedLog:
    """Queues a run's state changes and commits them in batches, one at a time."""

    def __init__(
        self,
        store: Store,
        campaign: str,
        run_id: str,
        on_refused: Callable[[Sequence[str]], None] = lambda _: None,
        on_failure: Callable[[HarkatError], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.run_id = run_id
        self.on_refused = on_refused
        self.on_failure = on_failure
        self.pending: list[tuple[Change, asyncio.Future[None] | None]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.failure: HarkatError | None = None

    async def sending(self, key: str) -> None:
        """Mark ``key`` as being sent and return once that is durable."""
        if self.failure is not None:
            raise self.failure
        future = asyncio.get_running_loop().create_future()
        self._add(key, future)
        await future

    def record(self, result: DeliveryResult, retry_at: float | None) -> None:
        """Queue a verdict for the next commit (dropped after a store failure: the row then
        stays `sending` and reads `unknown` later, which is the truth)."""
        if self.failure is None:
            self._add((result, retry_at), None)

    def _add(self, change: Change, future: asyncio.Future[None] | None) -> None:
        self.pending.append((change, future))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending and self.failure is None:
            batch, self.pending = self.pending, []
            try:
                refused = set(
                    await self.store.apply(
                        self.campaign, self.run_id, [change for change, _ in batch]
                    )
                )
            except Exception as exc:
                error = exc if isinstance(exc, HarkatError) else SendLogError(
                    f"{self.store.location}: {type(exc).__name__}: {exc}"
                )
                self.failure = error
                for _, future in batch + self.pending:
                    if future is not None and not future.done():
                        future.set_exception(error)
                self.pending = []
                self.on_failure(error)
                return
            lost = []
            for change, future in batch:
                key = change if isinstance(change, str) else change[0].key
                if key in refused:
                    lost.append(key)
                if future is not None and not future.done():
                    if key in refused:
                        future.set_exception(ClaimLost(f"{key}: this run no longer holds it"))
                    else:
                        future.set_result(None)
            if lost:
                self.on_refused(lost)

    async def close(self) -> None:
        """Commit whatever is queued; raise the store failure if there was one."""
        while self.flushing is not None and not self.flushing.done():
            await self.flushing
        if self.pending and self.failure is None:
            await self._flush()
        if self.failure is not None:
            raise self.failure
