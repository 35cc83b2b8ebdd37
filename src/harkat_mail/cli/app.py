"""The command group and what every command shares: one-line errors, confirmation."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import ConfigError, HarkatError
from ..models import SmtpConfig

F = TypeVar("F", bound=Callable[..., Any])
REJECTS_HELP = "Write the rows not sent to, with their reasons, to FILE (CSV, formula-safe)."
SEND_LOG_HELP = (
    "The send log to use instead of the campaign's: a SQLite file or a postgresql:// URL "
    "(password from PGPASSWORD or ~/.pgpass, never in the URL)."
)


def say(line: str) -> None:
    click.echo(line, err=True)


def clean_errors(func: F) -> F:
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


def describe(relays: Sequence[SmtpConfig]) -> str:
    """One relay as it describes itself; a pool as its relays with their weights."""
    if len(relays) == 1:
        return relays[0].describe()
    return "a pool of " + ", ".join(f"{r.describe()} weight {r.weight:g}" for r in relays)


def confirm(what: str, smtp: SmtpConfig | Sequence[SmtpConfig], yes: bool) -> None:
    """Ask before anything goes to a real relay; refuse without a terminal unless --yes."""
    relays = (smtp,) if isinstance(smtp, SmtpConfig) else tuple(smtp)
    if all(r.local for r in relays) or yes:
        return
    prompt = f"{what} through {describe(relays)}?"
    if not sys.stdin.isatty():
        raise ConfigError(f"{prompt} Refusing without a terminal; add --yes to confirm")
    if not click.confirm(prompt, default=False):
        raise ConfigError(f"{what}: not confirmed; nothing sent")


