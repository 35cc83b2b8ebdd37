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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..errors import HarkatError, RenderError
from ..models import Campaign, Contact, ContactList, OutgoingMessage
from .prepare import Prepared, compile_campaign, input_fingerprints, samples

POOL_FROM = 3000  # recipients; below this the sending process renders
BATCH = 250
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


def _checked(batch: Sequence[Contact], results: Sequence[Rendered]) -> Sequence[Rendered]:
    """The worker's results, proven to be for the contacts sent, in the same order."""
    keys = [r.key if isinstance(r, OutgoingMessage) else r[0] for r in results]
    if keys != [c.key for c in batch]:
        raise RenderError(
            "a render worker returned messages for other members; nothing of that batch was sent"
        )
    return results


async def rendered(
    prepared: Prepared,
    todo: Sequence[Contact],
    on_error: Callable[[str, str], None],
    pool_from: int | None = None,
) -> AsyncIterator[OutgoingMessage]:
    """Yield ``todo``'s messages in order, rendered in worker processes for large runs."""
    if len(todo) < (POOL_FROM if pool_from is None else pool_from):
        for count, contact in enumerate(todo, start=1):
            try:
                yield prepared.compose(contact)
            except HarkatError as exc:
                on_error(contact.key, str(exc))
            if count % 32 == 0:
                await asyncio.sleep(0)  # rendering must not starve the connections
        return
    batches = [list(todo[i : i + BATCH]) for i in range(0, len(todo), BATCH)]
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    # DKIM signing costs several times the rendering: then both cores sign, and the sending
    # loop (mostly waiting on sockets) shares one of them.
    workers = 2 if prepared.campaign.dkim else 1
    depth = workers + 1  # batches in flight: every worker busy while one batch is sent
    init = (prepared.campaign, samples(prepared), dict(prepared.fingerprints), os.getpid())
    pool = ProcessPoolExecutor(workers, context, initializer=_init, initargs=init)
    ahead = [loop.run_in_executor(pool, _render, batch) for batch in batches[:depth]]
    try:
        for number, batch in enumerate(batches):
            try:
                results = _checked(batch, await ahead.pop(0))
            except BrokenProcessPool:
                raise RenderError(
                    "a render worker stopped unexpectedly; run send again to resume"
                ) from None
            except (HarkatError, asyncio.CancelledError):
                raise
            except Exception as exc:  # a fault in the worker itself: one line, never a send
                raise RenderError(
                    f"a render worker failed ({type(exc).__name__}: {exc}); run send again "
                    "to resume"
                ) from None
            if number + depth < len(batches):
                ahead.append(loop.run_in_executor(pool, _render, batches[number + depth]))
            for count, item in enumerate(results, start=1):
                if isinstance(item, OutgoingMessage):
                    yield item
                else:
                    on_error(*item)
                if count % 32 == 0:
                    await asyncio.sleep(0)
    finally:
        for future in ahead:  # stopped early (Ctrl-C, a cap): drop what is not needed
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
