"""Rendering on the second core: a worker process renders batches while the loop sends.

The worker loads the same campaign and list and compiles the same variants, so a contact's
index means the same member on both sides; only indices go in and message bytes come out.
Small runs render in the sending process: starting a worker costs more than it saves.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..errors import HarkatError
from ..models import Contact, OutgoingMessage
from .prepare import Prepared

POOL_FROM = 3000  # recipients; below this the sending process renders
BATCH = 250

_worker: Prepared | None = None


def _init(campaign_path: str) -> None:
    """Worker start: load and prepare the campaign once."""
    global _worker
    from ..campaign.loader import load_campaign
    from .prepare import prepare

    _worker = prepare(load_campaign(Path(campaign_path)))


def _render(indices: list[int]) -> list[OutgoingMessage | tuple[str, str]]:
    """Messages for the contacts at ``indices``; (key, error) where rendering failed."""
    assert _worker is not None
    contacts = _worker.contacts.contacts
    out: list[OutgoingMessage | tuple[str, str]] = []
    for index in indices:
        try:
            out.append(_worker.compose(contacts[index]))
        except HarkatError as exc:
            out.append((contacts[index].key, str(exc)))
    return out


async def rendered(
    prepared: Prepared, todo: Sequence[Contact], on_error: Callable[[str, str], None]
) -> AsyncIterator[OutgoingMessage]:
    """Yield ``todo``'s messages in order, rendered in a worker process for large runs."""
    if len(todo) < POOL_FROM:
        for count, contact in enumerate(todo, start=1):
            try:
                yield prepared.compose(contact)
            except HarkatError as exc:
                on_error(contact.key, str(exc))
            if count % 32 == 0:
                await asyncio.sleep(0)  # rendering must not starve the connections
        return
    position = {c.key: i for i, c in enumerate(prepared.contacts.contacts)}
    indices = [position[c.key] for c in todo]
    batches = [indices[i : i + BATCH] for i in range(0, len(indices), BATCH)]
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    # DKIM signing costs several times the rendering: then both cores sign, and the sending
    # loop (mostly waiting on sockets) shares one of them.
    workers = 2 if prepared.campaign.dkim else 1
    depth = workers + 1  # batches in flight: every worker busy while one batch is sent
    with ProcessPoolExecutor(
        workers, context, initializer=_init, initargs=(str(prepared.campaign.source),)
    ) as pool:
        ahead = [loop.run_in_executor(pool, _render, batch) for batch in batches[:depth]]
        for number in range(len(batches)):
            results = await ahead.pop(0)
            if number + depth < len(batches):
                ahead.append(loop.run_in_executor(pool, _render, batches[number + depth]))
            for count, item in enumerate(results, start=1):
                if isinstance(item, OutgoingMessage):
                    yield item
                else:
                    on_error(*item)
                if count % 32 == 0:
                    await asyncio.sleep(0)
