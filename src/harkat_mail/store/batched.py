"""Group commit for a send run: many connections' changes share one transaction."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ..errors import SendLogError
from ..models import DeliveryResult
from .sqlite import Change, SendLog


class BatchedLog:
    """Group commit for a send run: many connections' changes share one transaction.

    ``sending`` waits until its row is committed (the rule: committed before DATA); verdicts
    are queued and committed with the next batch. Commits run on one worker thread, so the
    event loop keeps serving connections during the fsync.
    """

    def __init__(self, log: SendLog, campaign: str) -> None:
        self.log = log
        self.campaign = campaign
        self.pending: list[tuple[Change, asyncio.Future[None] | None]] = []
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sendlog")
        self.flushing: asyncio.Task[None] | None = None

    async def sending(self, key: str) -> None:
        """Mark ``key`` as being sent and return once that is durable."""
        future = asyncio.get_running_loop().create_future()
        self._add(key, future)
        await future

    def record(self, result: DeliveryResult, retry_at: float | None) -> None:
        """Queue a verdict for the next commit."""
        self._add((result, retry_at), None)

    def _add(self, change: Change, future: asyncio.Future[None] | None) -> None:
        self.pending.append((change, future))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending, []
            changes = [change for change, _ in batch]
            try:
                await loop.run_in_executor(self.executor, self.log.apply, self.campaign, changes)
            except BaseException as exc:
                # SendLog.apply already names the file; anything else is wrapped once here.
                error = (
                    exc
                    if isinstance(exc, SendLogError)
                    else SendLogError(f"{self.log.path}: cannot record the send ({exc!r})")
                )
                for _, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(error)
                if isinstance(exc, Exception):
                    raise error from None
                raise
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        """Commit whatever is queued and stop the writer thread.

        Raises the SendLogError of a commit that failed: its verdicts are not in the log, and
        an unretrieved task error would only surface later as an asyncio traceback.
        """
        try:
            while self.flushing is not None and not self.flushing.done():
                await self.flushing
            if self.flushing is not None:
                self.flushing.result()
            if self.pending:
                await self._flush()
        finally:
            self.executor.shutdown(wait=True)
