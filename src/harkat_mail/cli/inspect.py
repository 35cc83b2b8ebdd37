"""Commands that look without sending: validate, status, report, lists check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from .. import run
from ..campaign import load_campaign
from ..delivery import probe
from ..errors import HarkatError, RelayUnavailable, SendLogError
from ..lists import load_contacts, write_workbook
from ..models import Campaign, ListConfig, Rejected, SmtpConfig, reason_label
from ..reports import (
    export,
    iso_time,
    readable_rows,
    status_lines,
    summary_table,
    summary_text,
    write_file,
    write_rejects,
    zone_of,
)
from ..store import RunRow, open_store
from .app import REJECTS_HELP, SEND_LOG_HELP, clean_errors, main, say


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path), help=REJECTS_HELP)
@click.option(
    "--check-relay",
    is_flag=True,
    help="Also open one session with each relay (EHLO, STARTTLS, AUTH, QUIT) and show what it "
    "offers; exit 3 if one cannot be used.",
)
@clean_errors
def validate(campaign_file: Path, rejects: Path | None, check_relay: bool) -> None:
    """Check the YAML, the list and the templates; print counts; send nothing.

    Example: harkat-mail validate campaigns/sept2018.yaml --check-relay
    """
    campaign = load_campaign(campaign_file)
    if check_relay:  # before the list: a relay problem is worth knowing even if the list has one
        _check_relays(campaign.pool)
    prepared = run.prepare(campaign)
    contacts = prepared.contacts
    if rejects is not None:
        write_rejects(rejects, contacts.rejected)
    click.echo(f"{campaign.name}: {contacts.rows_read} rows read, {len(contacts.contacts)} to send")
    commercial = campaign.purpose == "commercial"
    consent = "members without a consent basis are skipped" if commercial else "no consent needed"
    click.echo(f"  purpose: {campaign.purpose} (CASL: {consent})")
    languages: dict[str, int] = {}
    for contact in contacts.contacts:
        lang = prepared.renderer.language_for(contact)
        languages[lang] = languages.get(lang, 0) + 1
    for lang, n in sorted(languages.items()):
        click.echo(f"  {campaign.contacts.segment_name} / {lang}: {n}")
    for reason, n in sorted(run.rejected_by_reason(contacts).items()):
        click.echo(f"  skipped, {reason}: {n}")
    for warning in prepared.renderer.warnings + list(contacts.warnings):
        click.echo(f"warning: {warning}")


def _check_relays(relays: tuple[SmtpConfig, ...]) -> None:
    """One session with each relay and what it offers; exit 3 naming those that failed."""
    failed: list[str] = []
    for relay in relays:
        if relay.local:
            click.echo("relay: the embedded capture relay (started by send; nothing to check)")
            continue
        try:
            offer = asyncio.run(probe(relay))
        except RelayUnavailable as exc:
            failed.append(str(exc))
            continue
        for line in offer.lines():
            click.echo(line)
    if failed:
        raise RelayUnavailable("; ".join(failed))


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--send-log", "send_log", metavar="PATH|URL", help=SEND_LOG_HELP)
@clean_errors
def status(campaign_file: Path, send_log: str | None) -> None:
    """Print recipients per send-log state, the runs sending now, and the latest errors."""
    campaign = load_campaign(campaign_file)

    async def read() -> tuple[
        dict[str, int], dict[str, int], list[Any], list[RunRow], dict[str, int]
    ]:
        store = await open_store(send_log or campaign.send_log, read_only=True)
        try:
            return (
                await store.counts(campaign.name),
                await store.skipped_reasons(campaign.name),
                await store.last_errors(campaign.name),
                await store.runs(campaign.name),
                await store.bounce_counts(campaign.name),
            )
        finally:
            await store.close()

    counts, skipped, errors, runs, bounced = asyncio.run(read())  # no log yet: exit 2, create none
    if not counts:  # a shared store that never saw this campaign
        raise SendLogError(
            f"{send_log or campaign.send_log}: no send log for {campaign.name}: nothing has been "
            "sent for this campaign yet"
        )
    click.echo("\n".join(status_lines(campaign.name, counts, skipped, bounced)))
    if runs:
        click.echo("runs:")
        now = time.time()
        zone = zone_of(campaign.timezone)
        for r in runs:
            since = iso_time(r.started_at, zone)
            lease = (
                f"lease expired {now - r.lease_until:.0f} s ago (taken over by the next run)"
                if r.expired
                else "sending"
            )
            click.echo(f"  {r.host} pid {r.pid}, since {since}: holds {r.held} rows; {lease}")
    if errors:
        click.echo("last errors:")
        for email, state, code, reply in errors:
            click.echo(f"  {email}: {state} {code or ''} {reply}".rstrip())


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "summary"]),
    default="csv",
    show_default=True,
    help="CSV (formula-safe, for spreadsheets), JSON, or a summary in plain words (counts per "
    "state, language, segment and reason).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write to FILE instead of stdout; a FILE ending in .xlsx is an Excel workbook with a "
    "Summary sheet and a Members sheet.",
)
@click.option("--send-log", "send_log", metavar="PATH|URL", help=SEND_LOG_HELP)
@clean_errors
def report(campaign_file: Path, fmt: str, output: Path | None, send_log: str | None) -> None:
    """One row per member: address, name, member id, state, attempts, last reply, Message-ID,
    times in ISO 8601 in the campaign's time zone, and the class, status and diagnostic of a
    bounce or complaint; or a summary."""
    campaign = load_campaign(campaign_file)

    async def read() -> list[dict[str, Any]]:
        store = await open_store(send_log or campaign.send_log, read_only=True)
        try:
            return [row async for row in store.rows(campaign.name)]
        finally:
            await store.close()

    zone = zone_of(campaign.timezone)
    stored = asyncio.run(read())
    rows = list(readable_rows(stored, zone, _member_names(campaign)))
    if output is not None and output.suffix.lower() == ".xlsx":
        table = [("Section", "Item", "Members"), *summary_table(campaign, stored)]
        members = [list(rows[0]) if rows else [], *([*r.values()] for r in rows)]
        write_workbook(output, {"Summary": table, "Members": members})
        return
    text = summary_text(campaign, stored, zone) if fmt == "summary" else export(rows, fmt)
    if output:
        write_file(output, text, "--output")
    else:
        click.echo(text, nl=False)


def _member_names(campaign: Campaign) -> dict[str, str]:
    """Send-log key -> the member's name, read from the campaign's member list.

    The send log keeps addresses and member ids; names come from the list as it is now
    (a list that cannot be read leaves the names empty, and says so).
    """
    try:
        contacts = load_contacts(
            campaign.contacts, campaign.language_column, campaign.default_language
        )
    except HarkatError as exc:
        say(f"names left empty: {exc}")
        return {}
    names = {c.key: c.display_name for c in contacts.contacts}
    names.update({f"skip:{r.source}:{r.row}": r.name for r in contacts.rejected})
    return names


@main.group()
def lists() -> None:
    """Member list tools."""


@lists.command("check")
@click.argument("list_file", type=click.Path(path_type=Path))
@click.option(
    "--campaign",
    "campaign_file",
    type=click.Path(path_type=Path),
    help="Apply this campaign's columns, segment and suppression.",
)
@click.option("--rejects", type=click.Path(path_type=Path), help=REJECTS_HELP)
@clean_errors
def lists_check(list_file: Path, campaign_file: Path | None, rejects: Path | None) -> None:
    """Show what cleaning keeps and drops from LIST_FILE, and why."""
    if campaign_file is not None:
        campaign = load_campaign(campaign_file)
        config = replace(campaign.contacts, paths=(list_file,))
        result = load_contacts(config, campaign.language_column, campaign.default_language)
    else:
        result = load_contacts(ListConfig(paths=(list_file,)), "language", "en")
    if rejects is not None:
        write_rejects(rejects, result.rejected)
    click.echo(
        f"{list_file}: {result.rows_read} rows read, {len(result.contacts)} kept, "
        f"{len(result.rejected)} rejected"
    )
    for source in result.sources:
        separated = "" if source.delimiter == "-" else f" {source.delimiter}-separated,"
        click.echo(f"  read {source.name}: {source.encoding},{separated} {source.rows} rows")
    languages: dict[str, int] = {}
    for contact in result.contacts:
        languages[contact.language] = languages.get(contact.language, 0) + 1
    click.echo("  kept by language: " + ", ".join(f"{k} {n}" for k, n in sorted(languages.items())))
    by_reason: dict[str, list[str]] = {}
    for rejected in result.rejected:
        by_reason.setdefault(reason_label(rejected.reason), []).append(
            f"{rejected.source} row {rejected.row}{_who(rejected)}: {rejected.email!r} "
            f"({rejected.reason})"
        )
    for reason, examples in sorted(by_reason.items()):
        click.echo(f"  rejected, {reason}: {len(examples)}")
        for example in examples[:3]:
            click.echo(f"    e.g. {example}")
    if rejects is None and any(len(e) > 3 for e in by_reason.values()):
        again = f" --campaign {campaign_file}" if campaign_file else ""
        click.echo(
            f"  (only the first 3 of each reason shown; every row with its name and member id: "
            f"harkat-mail lists check {list_file}{again} --rejects rejects.csv)"
        )
    for warning in result.warnings:
        click.echo(f"warning: {warning}")




def _who(rejected: Rejected) -> str:
    """`` (Élise Côté, member 1042)``: what finds the row besides its number."""
    parts = [p for p in (rejected.name, rejected.member_id and f"member {rejected.member_id}") if p]
    return f" ({', '.join(parts)})" if parts else ""
