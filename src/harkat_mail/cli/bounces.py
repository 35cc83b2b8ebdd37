"""`bounces`: read returned mail and say what it means for each member."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import click

from ..bounces import classify, iter_messages, to_json
from ..bounces.classify import Verdict
from ..bounces.mailboxes import open_mailbox
from ..campaign import load_campaign
from ..run.bounces import process_bounces
from .app import clean_errors, main


@main.group()
def bounces() -> None:
    """Bounces and complaints: classify returned mail (check) and apply it to a campaign."""


def describe(source: str, verdict: Verdict) -> str:
    """One line per message: its kind, then each recipient's address, class, status and reason."""
    if not verdict.recipients:
        return f"{source}: {verdict.kind}"
    parts = [
        f"{r.address or '(unnamed)'} {r.bounce_class} -> {r.action}"
        + (f" {r.status}" if r.status else "")
        + (f" ({_short(r.diagnostic)})" if r.diagnostic else "")
        for r in verdict.recipients
    ]
    return f"{source}: {verdict.kind}: " + "; ".join(parts)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@bounces.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH|URL...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per message; json: one JSON object per line.",
)
@click.option(
    "--password-env",
    metavar="NAME",
    help="For imaps:// and imap:// URLs: the environment variable holding the IMAP password "
    "(never put it in the URL).",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path),
    help="For IMAP: a PEM file of CA certificates trusted besides the system's (a private CA).",
)
@clean_errors
def check(paths: tuple[str, ...], fmt: str, password_env: str | None, ca_file: Path | None) -> None:
    """Classify the mail at each PATH|URL (files, .eml folders, Maildirs, mbox files, or
    IMAP folders: imaps://user@host[:port]/FOLDER, or imap://... with STARTTLS); change nothing.

    IMAP folders are opened read-only (EXAMINE): no message is marked seen, moved or deleted;
    sources are URL:UID.

    Example: harkat-mail bounces check imaps://bounces@mail.example.org/INBOX
    --password-env IMAP_PASSWORD --format json
    """

    def show(source: str, data: bytes) -> None:
        verdict = classify(data)
        if fmt == "json":
            click.echo(json.dumps(to_json(source, verdict), ensure_ascii=False))
        else:
            click.echo(describe(source, verdict))

    for path in paths:
        if "://" in path:
            asyncio.run(_check_imap(path, password_env, ca_file, show))
        else:
            for source, data in iter_messages(path):
                show(source, data)


async def _check_imap(
    url: str, password_env: str | None, ca_file: Path | None, show: Callable[[str, bytes], None]
) -> None:
    box = open_mailbox(
        url, "", password_env, ca_file, readonly=True, names=("--password-env", "--ca-file")
    )
    try:
        async for item in box.messages():
            show(item.source, item.data)
    finally:
        await box.close()


@bounces.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "source",
    metavar="PATH|URL",
    help="Read this mailbox instead of bounces.mailbox: a Maildir, an mbox, a folder of .eml "
    "files, or imaps://user@host/FOLDER (password from bounces.password_env).",
)
@clean_errors
def process(campaign_file: Path, source: str | None) -> None:
    """Apply the bounces and complaints in the mailbox to CAMPAIGN_FILE's send log.

    Hard bounces and complaints are suppressed project-wide; soft bounces are scored across
    the project's campaigns and suppressed on reaching bounces.soft_threshold; blocks are
    counted, never suppressed. Processed mail moves to the bounces.processed folder; the rest
    stays and is listed.

    Example: harkat-mail bounces process campaigns/sept2018.yaml --from ~/Maildir
    """
    campaign = load_campaign(campaign_file)
    summary = asyncio.run(process_bounces(campaign, source))
    applied = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.applied.items())) or "none"
    click.echo(
        f"{campaign.name}: {summary.read} messages read from {summary.mailbox}; "
        f"applied: {applied}; {summary.suppressed} addresses suppressed; "
        f"{summary.moved} moved to {summary.processed}"
    )
    if summary.refused:
        click.echo(f"  {summary.refused} hard refusals at RCPT during the send, now suppressed")
    if summary.already:
        click.echo(f"  {summary.already} already applied by an earlier run")
    for line in summary.left:
        click.echo(f"  left in the mailbox: {line}")
    if summary.alarm:
        click.echo(summary.alarm, err=True)
