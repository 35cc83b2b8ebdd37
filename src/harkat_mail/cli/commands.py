"""Thin commands over the library: parse, call one function, print. Errors -> one line + code."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import pipeline
from .config import load_campaign, parse_smtp_url
from .contacts import load_contacts
from .dkimsign import generate_key
from .errors import ConfigError, HarkatError
from .models import ListConfig, RunSummary, SmtpConfig
from .progress import reporter
from .relay import local_relay
from .reports import export, status_lines, write_rejects
from .send import send as send_run
from .send import send_tests
from .sendlog import SendLog, reason_label
from .tokens import DEFAULT_SECRET_ENV, Signer, secret_from_env, secret_is_set

F = TypeVar("F", bound=Callable[..., Any])
REJECTS_HELP = "Write the rows not sent to, with their reasons, to FILE (CSV, formula-safe)."


def _say(line: str) -> None:
    click.echo(line, err=True)


def _clean_errors(func: F) -> F:
    """Turn a ``HarkatError`` into one line on stderr and its exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HarkatError as exc:
            click.echo(f"harkat-mail: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("harkat-mail: interrupted; run the same command again to resume", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harkat-mail")
def main() -> None:
    """Mail-merge for union communications: campaign YAML in, delivered and logged mail out."""


def _summary(summary: RunSummary) -> None:
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items())) or "none"
    if summary.dry_run:
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
        click.echo(f"{summary.already_done} already delivered by an earlier run")
    if summary.stopped_because:
        click.echo(f"stopped early: {summary.stopped_because}")
    if summary.deferred or summary.stopped_because or summary.interrupted:
        click.echo("not everyone has a verdict yet: run the same command again to resume")
    if summary.unknown:
        click.echo(
            f"{summary.unknown} may or may not have arrived (no reply after the final dot); "
            "they are not resent unless you add --retry-unknown"
        )


def _confirm(what: str, smtp: SmtpConfig, yes: bool) -> None:
    """Ask before anything goes to a real relay; refuse without a terminal unless --yes."""
    if smtp.local or yes:
        return
    prompt = f"{what} through {smtp.describe()}?"
    if not sys.stdin.isatty():
        raise ConfigError(f"{prompt} Refusing without a terminal; add --yes to confirm")
    if not click.confirm(prompt, default=False):
        raise ConfigError(f"{what}: not confirmed; nothing sent")


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
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Also resend recipients whose delivery is unknown (a copy may already have arrived).",
)
@click.option(
    "--test-to",
    "test_to",
    multiple=True,
    metavar="ADDR",
    help="Send one [TEST] message per language to ADDR (repeatable); nothing is logged.",
)
@_clean_errors
def send(
    campaign_file: Path,
    dry_run: bool,
    limit: int | None,
    smtp_url: str | None,
    yes: bool,
    force: bool,
    rejects: Path | None,
    retry_unknown: bool,
    test_to: tuple[str, ...],
) -> None:
    """Send CAMPAIGN_FILE, or resume it: only recipients not yet sent get a message."""
    campaign = load_campaign(campaign_file)
    smtp = parse_smtp_url(smtp_url) if smtp_url else campaign.smtp
    if not (dry_run or smtp.local):  # links must verify at the unsubscribe server
        secret_from_env(campaign.unsubscribe.secret_env, required=True)
    elif not secret_is_set(campaign.unsubscribe.secret_env):
        _say(
            f"note: {campaign.unsubscribe.secret_env} is not set: unsubscribe links are signed "
            "with a local key that no unsubscribe server accepts (fine for previews)"
        )
    prepared = pipeline.prepare(campaign)
    if rejects is not None:
        write_rejects(rejects, prepared.contacts.rejected)
    for warning in list(prepared.contacts.warnings):
        _say(f"warning: {warning}")
    if dry_run:  # the dry-run summary lists the template warnings with the preview's
        _summary(pipeline.dry_run(prepared, progress=_say))
        return
    for warning in prepared.renderer.warnings:
        _say(f"warning: {warning}")
    if test_to:
        count = len(test_to) * len(prepared.renderer.languages)
        _confirm(f"Send {count} [TEST] messages of {campaign.name}", smtp, yes)
        results = send_tests(prepared, test_to, smtp)
        sent = sum(r.outcome == "sent" for r in results)
        click.echo(f"{sent} of {len(results)} test messages accepted; the send log is unchanged")
        for result in results:
            if result.outcome != "sent":
                click.echo(f"  {result.key}: {result.outcome} {result.code or ''} {result.reply}")
        sys.exit(0 if sent == len(results) else 1)
    with SendLog(campaign.send_log) as log:
        todo = pipeline.plan(prepared, log, force, retry_unknown)
        if limit is not None:
            todo = todo[:limit]
        if not todo:
            counts = log.counts(campaign.name)
            click.echo(
                f"{campaign.name}: nothing new to send; the send log already records "
                f"{counts.get('sent', 0)} delivered ({campaign.send_log})"
            )
            return
        _confirm(f"Send {len(todo)} messages of {campaign.name}", smtp, yes)
        _say(f"sending {len(todo)} messages of {campaign.name} through {smtp.describe()}")
        with reporter(len(todo)) as show:
            summary = send_run(prepared, log, todo, smtp, say=_say, progress=show)
    _summary(summary)
    if smtp.local:
        click.echo(f"delivered mail is in {campaign.outbox}")
    if summary.interrupted:
        sys.exit(130)
    if summary.failed or summary.deferred or summary.unknown or summary.stopped_because:
        sys.exit(1)


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--rejects", type=click.Path(path_type=Path), help=REJECTS_HELP)
@_clean_errors
def validate(campaign_file: Path, rejects: Path | None) -> None:
    """Check the YAML, the list and the templates; print counts; send nothing."""
    campaign = load_campaign(campaign_file)
    prepared = pipeline.prepare(campaign)
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
    for reason, n in sorted(pipeline.rejected_by_reason(contacts).items()):
        click.echo(f"  skipped, {reason}: {n}")
    for warning in prepared.renderer.warnings + list(contacts.warnings):
        click.echo(f"warning: {warning}")


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@_clean_errors
def status(campaign_file: Path) -> None:
    """Print how many recipients are in each send-log state."""
    campaign = load_campaign(campaign_file)
    if not campaign.send_log.exists():
        click.echo(f"{campaign.name}: not sent yet (no send log at {campaign.send_log})")
        return
    with SendLog(campaign.send_log) as log:
        lines = status_lines(
            campaign.name, log.counts(campaign.name), log.skipped_reasons(campaign.name)
        )
        errors = log.last_errors(campaign.name)
    click.echo("\n".join(lines))
    if errors:
        click.echo("last errors:")
        for email, state, code, reply in errors:
            click.echo(f"  {email}: {state} {code or ''} {reply}".rstrip())


@main.command()
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write to FILE instead of stdout."
)
@_clean_errors
def report(campaign_file: Path, fmt: str, output: Path | None) -> None:
    """One row per recipient: address, state, attempts, last reply, Message-ID, times."""
    campaign = load_campaign(campaign_file)
    with SendLog(campaign.send_log) as log:
        text = export(log.rows(campaign.name), fmt)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


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
@_clean_errors
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
        click.echo(
            f"  read {source.name}: {source.encoding}, {source.delimiter}-separated, "
            f"{source.rows} rows"
        )
    languages: dict[str, int] = {}
    for contact in result.contacts:
        languages[contact.language] = languages.get(contact.language, 0) + 1
    click.echo("  kept by language: " + ", ".join(f"{k} {n}" for k, n in sorted(languages.items())))
    by_reason: dict[str, list[str]] = {}
    for rejected in result.rejected:
        by_reason.setdefault(reason_label(rejected.reason), []).append(
            f"{rejected.source} row {rejected.row}: {rejected.email!r} ({rejected.reason})"
        )
    for reason, examples in sorted(by_reason.items()):
        click.echo(f"  rejected, {reason}: {len(examples)}")
        for example in examples[:3]:
            click.echo(f"    e.g. {example}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")


def _until_interrupted(stop: Callable[[], None]) -> None:
    """Serve until Ctrl-C (which ``_clean_errors`` turns into exit 130), then ``stop``."""
    try:
        while True:
            time.sleep(3600)
    finally:
        stop()


@main.command()
@click.option(
    "--maildir", type=click.Path(path_type=Path), required=True, help="Where mail is filed."
)
@click.option("--port", type=click.IntRange(0, 65535), default=2525, show_default=True)
@_clean_errors
def relay(maildir: Path, port: int) -> None:
    """Run the local capture relay on 127.0.0.1 until Ctrl-C."""
    server = local_relay(maildir, port=port).start()
    click.echo(f"capture relay on smtp://127.0.0.1:{server.port}, filing into {maildir}")
    _until_interrupted(server.stop)


@main.command("dkim-key")
@click.argument("key_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--selector", default="harkat", show_default=True)
@click.option("--domain", required=True, help="The sending domain (From: ...@DOMAIN).")
@_clean_errors
def dkim_key(key_file: Path, selector: str, domain: str) -> None:
    """Make a DKIM key pair: KEY_FILE (private, mode 600) and the DNS record to publish."""
    record = generate_key(key_file)
    click.echo(f"wrote {key_file}; publish this TXT record, then add dkim: to the campaign:")
    pieces = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
    click.echo(f"{selector}._domainkey.{domain}. IN TXT ( {pieces} )")  # 255-byte strings


@main.command("unsubscribe-server")
@click.option(
    "--project",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The project folder (holding campaigns/): unsubscribes go to its suppression.txt.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True)
@click.option(
    "--secret-env",
    default=DEFAULT_SECRET_ENV,
    show_default=True,
    help="Environment variable holding the secret the campaigns sign links with.",
)
@_clean_errors
def unsubscribe_server(project: Path, host: str, port: int, secret_env: str) -> None:
    """Serve one-click unsubscribe links (GET confirms, POST unsubscribes) until Ctrl-C.

    Put it behind the HTTPS address in the campaigns' unsubscribe.url; needs the
    'unsubscribe' extra (pip install 'harkat-mail[unsubscribe]').
    """
    try:
        from .unsubscribe_server import ServerThread, make_app
    except ImportError:
        raise ConfigError(
            "the unsubscribe server needs aiohttp: pip install 'harkat-mail[unsubscribe]'"
        ) from None
    signer = Signer(secret_from_env(secret_env, required=True))
    suppression = project.resolve() / "suppression.txt"
    server = ServerThread(make_app(signer, suppression), host, port).start()
    click.echo(f"unsubscribe server on http://{host}:{server.port}, recording to {suppression}")
    _until_interrupted(server.stop)
