"""Rendering on the second core: worker processes render the contacts the run claimed.

Each worker is handed the campaign and the sample contacts the variants were checked against,
compiles the same variants, and then renders exactly the ``Contact`` objects it is sent: it
never reloads the member list, so a list or suppression file edited mid-run cannot change who
a batch is for. Each message comes back under its contact's key and is checked against it: a
mismatch stops the run, it is never sent. Small runs render in the sending process: starting
a worker costs more than it saves.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..errors import HarkatError, RenderError
from ..models import Campaign, Contact, ContactList, OutgoingMessage
from .prepare import Prepared, compile_campaign, input_fingerprints, samples

POOL_FROM = 3000  # recipients; below this the sending process renders
PARENT_CHECK = 0.5  # seconds between a worker's checks that the sending process is alive

_worker: Prepared | None = None
_failure: HarkatError | None = None

Rendered = OutgoingMessage | tuple[str, str]  # a message, or (key, why it was not rendered)


def _watch_parent(parent: int) -> None:
    """Exit when the sending process is gone (killed outright): no orphan keeps its memory."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(1)


def _init(
    campaign: Campaign, sample: tuple[Contact, ...], fingerprints: Mapping[str, str], parent: int
) -> None:
    """Worker start: compile the variants once; Ctrl-C is the sending process's to handle."""
    global _worker, _failure
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        if input_fingerprints(campaign)["template"] != fingerprints["template"]:
            raise RenderError(f"{campaign.template}: the template changed during the run")
        contacts = ContactList(sample, (), len(sample))
        _worker = compile_campaign(campaign, contacts, fingerprints)
    except HarkatError as exc:
        _failure = exc


def _render(batch: list[Contact]) -> list[Rendered]:
    """The messages for ``batch``, in order; (key, error) where one contact's rendering failed."""
    if _worker is None:
        raise _failure or RenderError("the render worker did not start")
    out: list[Rendered] = []
    for contact in batch:
        try:
            out.append(_worker.compose(contact))
        except HarkatError as exc:
            out.append((contact.key, str(exc)))
    return out


def _verify(batch: Sequence[Contact], results: Sequence[Rendered]) -> Sequence[Rendered]:
    """The worker's results, proven to be for the contacts sent, in the same order."""
    keys = [r.key if isinstance(r, OutgoingMessage) else r[0] for r in results]
    if keys != [c.key for c in batch]:
        raise RenderError(
            "a render worker returned messages for other members; nothing of that batch was sent"
        )
    return results


class Renderers:
    """Renders batches of claimed contacts: in this process, or in worker processes.

    ``submit`` starts a batch (in a worker, right away) and returns what to await for its
    results, checked to be for exactly that batch. Use as a context manager: leaving it stops
    the workers.
    """

    def __init__(self, prepared: Prepared, use_workers: bool) -> None:
        self.prepared = prepared
        self.pool: ProcessPoolExecutor | None = None
        # DKIM signing costs several times the rendering: then both cores sign, and the
        # sending loop (mostly waiting on sockets) shares one of them.
        self.workers = (2 if prepared.campaign.dkim else 1) if use_workers else 0
        if use_workers:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded process
            init = (prepared.campaign, samples(prepared), dict(prepared.fingerprints), os.getpid())
            self.pool = ProcessPoolExecutor(self.workers, context, initializer=_init, initargs=init)

    @property
    def depth(self) -> int:
        """Batches worth having in flight: every worker busy while one batch is sent."""
        return self.workers + 1

    def submit(self, batch: list[Contact]) -> Awaitable[Sequence[Rendered]]:
        """Start rendering ``batch``; await the result for its messages, in order."""
        if self.pool is None:
            return self._here(batch)
        future = asyncio.get_running_loop().run_in_executor(self.pool, _render, batch)
        return self._checked(batch, future)

    async def _here(self, batch: list[Contact]) -> Sequence[Rendered]:
        out: list[Rendered] = []
        for count, contact in enumerate(batch, start=1):
            try:
                out.append(self.prepared.compose(contact))
            except HarkatError as exc:
                out.append((contact.key, str(exc)))
            if count % 32 == 0:
                await asyncio.sleep(0)  # rendering must not starve the connections
        return out

    async def _checked(
        self, batch: list[Contact], future: Awaitable[list[Rendered]]
    ) -> Sequence[Rendered]:
        try:
            return _verify(batch, await future)
        except BrokenProcessPool:
            raise RenderError(
                "a render worker stopped unexpectedly; run send again to resume"
            ) from None
        except HarkatError:
            raise
        except Exception as exc:  # a fault in the worker itself: one line, never a send
            raise RenderError(
                f"a render worker failed ({type(exc).__name__}: {exc}); run send again to resume"
            ) from None

    def __enter__(self) -> Renderers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
