"""``harkat-mail send``: dry run, test sends, and the real send or its resume."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from .. import run
from ..campaign import load_campaign, parse_smtp_url
from ..errors import ConfigError
from ..mail import secret_from_env, secret_is_set
from ..models import RunSummary, SmtpConfig
from ..reports import write_rejects
from ..store import Store, open_store
from .app import REJECTS_HELP, SEND_LOG_HELP, clean_errors, confirm, describe, main, say
from .progress import reporter, waiting


def _when(epoch: float) -> str:
    """A due time as people read it: local clock, and how long from now."""
    left = max(0.0, epoch - time.time())
    wait = f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min" if left < 7200 else (
        f"{left / 3600:.1f} h"
    )
    return f"{datetime.fromtimestamp(epoch):%Y-%m-%d %H:%M:%S} (in {wait})"


def _summary(summary: RunSummary) -> None:
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items())) or "none"
    if summary.dry_run:
        if summary.left is not None:  # the send log has this campaign: what matters is what's left
            done = summary.planned - summary.left
            others = f" (the send log has a verdict for the other {done})" if done else ""
            click.echo(
                f"dry run: {summary.left} left to send of {summary.planned} recipients{others}; "
                f"every message rendered and checked, nothing sent; skipped: {skipped}"
            )
        else:
            click.echo(
                f"dry run: {summary.planned} messages rendered and checked, nothing sent; "
                f"skipped: {skipped}"
            )
        for warning in summary.warnings:
            click.echo(f"warning: {warning}")
        click.echo(f"previews: {summary.previews}")
        return
    click.echo(
        f"{summary.campaign}: delivered {summary.delivered}, deferred {summary.deferred}, "
        f"failed {summary.failed}, unknown {summary.unknown}; skipped: {skipped}"
    )
    if summary.planned:
        click.echo(f"{summary.rate:.0f} messages/s over {summary.seconds:.2f} s")
    if summary.already_done:
        click.echo(f"{summary.already_done} delivered by other or earlier runs")
    if summary.lost:
        click.echo(f"{summary.lost} left to other runs (they hold those members now)")
    if summary.stopped_because:
        click.echo(f"stopped early: {summary.stopped_because}")
    if summary.deferred and summary.next_retry_at is not None:
        click.echo(
            f"{summary.deferred} deferred: the next is due at {_when(summary.next_retry_at)}; "
            "run the same command again then"
        )
    elif summary.deferred or summary.stopped_because or summary.interrupted:
        click.echo("not everyone has a verdict yet: run the same command again to resume")
    if summary.unknown:
        click.echo(
            f"{summary.unknown} may or may not have arrived (no reply after the final dot); "
            "they are not resent unless you add --retry-unknown"
        )


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Render and check every message, write previews, send nothing."
)
@click.option("--limit", type=click.IntRange(min=1), help="Send to at most N recipients this run.")
@click.option(
    "--smtp", "smtp_url", help="Relay URL overriding the YAML: smtp://host:port, smtps://host."
)
@click.option("--yes", is_flag=True, help="Do not ask before sending to a real relay.")
@click.option(
    "--force", is_flag=True, help="Resume even though the YAML, list or template changed."
)
@click.option("--rejects", type=click.Path(path_type=Path), help=REJECTS_HELP)
@click.option("--send-log", "send_log", metavar="PATH|URL", help=SEND_LOG_HELP)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also resend recipients whose delivery is unknown (a copy may already have arrived).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also resend recipients whose delivery failed (a 5xx, or retries used up), with "
    "fresh attempts and the same Message-ID.",
)
@click.option(
    "--retry-code",
    "retry_codes",
    multiple=True,
    metavar="CODE",
    callback=lambda _ctx, _param, value: _codes(value),
    help="With --retry-failed (implied): only failed recipients whose last reply code matches, "
    "e.g. 4xx, 5xx, 55x, 550 (repeatable).",
)
@click.option(
    "--test-to",
    "test_to",
    multiple=True,
    metavar="ADDR",
    help="Send one [TEST] message per language to ADDR (repeatable); nothing is logged, "
    "its unsubscribe link unsubscribes nobody, and the capture relay files it in "
    "<outbox>-tests/.",
)
@click.option(
    "--as",
    "as_member",
    metavar="MEMBER",
    help="With --test-to: show this member's data (member id, address or row number); "
    "default: the first member of each language.",
)
@click.option(
    "--preview-for",
    "preview_for",
    multiple=True,
    metavar="ADDR",
    help="With --dry-run: also preview this member's own message (address, member id or row; "
    "repeatable).",
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help='Wait until TIME, then send, e.g. --at "2026-12-01 07:00" (ISO 8601, seconds '
    "optional, in the campaign's timezone:); Ctrl-C while waiting sends nothing.",
)
@clean_errors
def send(
    campaign_file: Path,
    dry_run: bool,
    limit: int | None,
    smtp_url: str | None,
    yes: bool,
    force: bool,
    rejects: Path | None,
    send_log: str | None,
    retry_unknown: bool,
    retry_failed: bool,
    retry_codes: tuple[str, ...],
    test_to: tuple[str, ...],
    as_member: str | None,
    preview_for: tuple[str, ...],
    at: str | None,
) -> None:
    """Send CAMPAIGN_FILE, or resume it: only recipients not yet sent get a message.

    Example: harkat-mail send campaigns/sept2018.yaml --retry-failed --retry-code 4xx
    """
    campaign = load_campaign(campaign_file)
    _check_combinations(dry_run, test_to, as_member, preview_for, at)
    when = run.parse_at(at, campaign, run.SystemClock().now()) if at else None
    relays = (parse_smtp_url(smtp_url),) if smtp_url else campaign.pool
    smtp = relays[0]
    if not (dry_run or smtp.local):  # links must verify at the unsubscribe server
        secret_from_env(campaign.unsubscribe.secret_env, required=True)
    elif not secret_is_set(campaign.unsubscribe.secret_env):
        say(
            f"note: {campaign.unsubscribe.secret_env} is not set: unsubscribe links are signed "
            "with a local key that no unsubscribe server accepts (fine for previews)"
        )
    prepared = run.prepare(campaign)
    if rejects is not None:
        write_rejects(rejects, prepared.contacts.rejected)
    for warning in list(prepared.contacts.warnings):
        say(f"warning: {warning}")
    if dry_run:  # the dry-run summary lists the template warnings with the preview's
        _summary(run.dry_run(prepared, say=say, preview_for=preview_for, send_log=send_log))
        return
    for warning in prepared.renderer.warnings:
        say(f"warning: {warning}")
    if test_to:
        count = len(test_to) * len(prepared.renderer.languages)
        confirm(f"Send {count} [TEST] messages of {campaign.name}", smtp, yes)
        results = run.send_tests(prepared, test_to, smtp, as_member)
        sent = sum(r.outcome == "sent" for r in results)
        click.echo(f"{sent} of {len(results)} test messages accepted; the send log is unchanged")
        if smtp.local:
            click.echo(f"test messages are in {run.tests_outbox(campaign.outbox)}")
        for result in results:
            if result.outcome != "sent":
                click.echo(f"  {result.key}: {result.outcome} {result.code or ''} {result.reply}")
        sys.exit(0 if sent == len(results) else 1)
    retry = retry_codes if retry_codes else () if retry_failed else None
    try:
        summary, left = asyncio.run(
            _deliver(prepared, relays, send_log, force, retry_unknown, retry, limit, yes, when)
        )
    except KeyboardInterrupt:
        if not _waiting[0]:
            raise
        click.echo("interrupted while waiting for --at: nothing was sent")
        sys.exit(130)
    if summary is not None:
        _summary(summary)
        if smtp.local:
            click.echo(f"delivered mail is in {campaign.outbox}")
        if summary.interrupted:
            sys.exit(130)
    if left:
        click.echo(left)
    if left or (
        summary is not None
        and (summary.failed or summary.deferred or summary.unknown or summary.stopped_because)
    ):
        sys.exit(1)


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """Reply-code filters: three characters, a digit 2-5 then digits or x (``5xx``, ``550``)."""
    for value in values:
        if not re.fullmatch(r"[2-5][0-9xX]{2}", value):
            raise click.BadParameter(f"{value!r}: expected a reply code such as 550, 55x or 4xx")
    return tuple(v.lower() for v in values)


async def _left(store: Store, campaign: str, summary: RunSummary | None) -> str:
    """What the send log still holds without a delivery: one line, or "" when nothing."""
    counts = await store.counts(campaign)
    parts = []
    deferred = counts.get("deferred", 0) - (summary.deferred if summary else 0)
    if deferred > 0:
        due = await store.next_attempt(campaign)
        when = (
            time.strftime("%H:%M:%S", time.localtime(due))
            if due and due > time.time()
            else "now"
        )
        more = "more " if summary and summary.deferred else ""
        parts.append(f"{deferred} {more}deferred (the next is due {when}: run send again then)")
    failed = counts.get("failed", 0) - (summary.failed if summary else 0)
    if failed > 0 and summary is None:
        parts.append(f"{failed} failed (resend them with --retry-failed)")
    unknown = counts.get("unknown", 0) - (summary.unknown if summary else 0)
    if unknown > 0 and summary is None:
        parts.append(f"{unknown} unknown (--retry-unknown resends them)")
    return f"{campaign}: the send log still has " + "; ".join(parts) if parts else ""


_waiting = [False]  # True while waiting for --at: Ctrl-C then means nothing was sent


def _check_combinations(
    dry_run: bool,
    test_to: tuple[str, ...],
    as_member: str | None,
    preview_for: tuple[str, ...],
    at: str | None,
) -> None:
    """Options that belong to another mode are refused rather than ignored."""
    if as_member and not test_to:
        raise ConfigError("--as picks whose data a test message shows: add --test-to ADDR")
    if preview_for and not dry_run:
        raise ConfigError("--preview-for renders previews: add --dry-run")
    if at and (dry_run or test_to):
        raise ConfigError("--at schedules the real send; drop --dry-run and --test-to")


async def _planned(
    prepared: run.Prepared,
    store: Store,
    force: bool,
    retry_unknown: bool,
    retry_failed: tuple[str, ...] | None,
    limit: int | None,
) -> tuple[int, int]:
    """Plan the campaign; (rows due, this run's share), having said so when nothing is due."""
    campaign = prepared.campaign
    due = await run.plan(prepared, store, force, retry_unknown, retry_failed, say)
    todo = min(due, limit) if limit is not None else due
    if not todo:
        counts = await store.counts(campaign.name)
        held = sum(r.held for r in await store.runs(campaign.name))
        busy = f"; {held} are held by other runs sending now" if held else ""
        click.echo(
            f"{campaign.name}: nothing new to send; the send log already records "
            f"{counts.get('sent', 0)} delivered ({store.location}){busy}"
        )
    return due, todo


async def _deliver(
    prepared: run.Prepared,
    relays: tuple[SmtpConfig, ...],
    send_log: str | None,
    force: bool,
    retry_unknown: bool,
    retry_failed: tuple[str, ...] | None,
    limit: int | None,
    yes: bool,
    when: datetime | None = None,
) -> tuple[RunSummary | None, str]:
    """Plan, confirm and run this process's share of the campaign; what is left after it.

    The summary is None when nothing was due. With ``when`` the send is confirmed first, then
    waited for with the send log closed (a connection idle for hours may not survive), then
    planned afresh.
    """
    campaign = prepared.campaign
    location = send_log or campaign.send_log
    if when is not None:
        store = await open_store(location)
        try:
            _, todo = await _planned(prepared, store, force, retry_unknown, retry_failed, limit)
            if not todo:
                return None, await _left(store, campaign.name, None)
        finally:
            await store.close()
        until = f"{when:%Y-%m-%d %H:%M:%S} ({run.zone_label(campaign)})"
        confirm(f"Send {todo} messages of {campaign.name} at {until}", relays, yes)
        _waiting[0] = True
        with waiting(until) as tick:
            await run.wait_until(when, run.SystemClock(), tick)
        _waiting[0] = False
    store = await open_store(location)
    try:
        due, todo = await _planned(prepared, store, force, retry_unknown, retry_failed, limit)
        if not todo:
            return None, await _left(store, campaign.name, None)
        if when is None:
            confirm(f"Send {todo} messages of {campaign.name}", relays, yes)
        say(f"sending up to {todo} messages of {campaign.name} through {describe(relays)}")
        with run.relays_for(prepared, relays) as pool, reporter(todo) as show:
            summary = await run.run_send(
                prepared,
                store,
                pool,
                due=due,
                retry_unknown=retry_unknown,
                limit=limit,
                say=say,
                progress=show,
            )
        return summary, await _left(store, campaign.name, summary)
    finally:
        await store.close()
