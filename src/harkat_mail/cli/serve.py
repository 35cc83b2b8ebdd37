"""Long-running helpers: the capture relay, the unsubscribe server; and DKIM keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click

from ..campaign import load_campaign
from ..delivery import local_relay
from ..errors import ConfigError, HarkatError
from ..mail import Signer, generate_key, secret_from_env
from ..models import DEFAULT_SECRET_ENV, Campaign
from .app import clean_errors, main, say


def until_interrupted(stop: Callable[[], None]) -> None:
    """Serve until Ctrl-C (which ``clean_errors`` turns into exit 130), then ``stop``."""
    try:
        while True:
            time.sleep(3600)
    finally:
        stop()


@main.command()
@click.option(
    "--maildir", type=click.Path(path_type=Path), required=True, help="Where mail is filed."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2525,
    show_default=True,
    help="Port on 127.0.0.1 to listen on (0: any free port).",
)
@clean_errors
def relay(maildir: Path, port: int) -> None:
    """Run the local capture relay on 127.0.0.1 until Ctrl-C."""
    server = local_relay(maildir, port=port).start()
    click.echo(f"capture relay on smtp://127.0.0.1:{server.port}, filing into {maildir}")
    until_interrupted(server.stop)


@main.command("dkim-key")
@click.argument("key_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--selector",
    default="harkat",
    show_default=True,
    help="DKIM selector: the record goes at SELECTOR._domainkey.DOMAIN.",
)
@click.option("--domain", required=True, help="The sending domain (From: ...@DOMAIN).")
@clean_errors
def dkim_key(key_file: Path, selector: str, domain: str) -> None:
    """Make a DKIM key pair: KEY_FILE (private, mode 600) and the DNS record to publish."""
    record = generate_key(key_file)
    click.echo(f"wrote {key_file}; publish this TXT record, then add dkim: to the campaign:")
    pieces = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
    click.echo(f"{selector}._domainkey.{domain}. IN TXT ( {pieces} )")  # 255-byte strings


def _campaigns(project: Path) -> list[Campaign]:
    """The project's campaigns, so the page can name the union; one that does not load is
    named in a note and its lists are shown by list id."""
    found = []
    for path in sorted((project / "campaigns").glob("*.y*ml")):
        try:
            found.append(load_campaign(path))
        except HarkatError as exc:
            say(f"note: {exc}; its unsubscribe page shows the list id")
    return found


@main.command("unsubscribe-server")
@click.option(
    "--project",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The project folder (holding campaigns/): unsubscribes go to its suppression.txt.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (behind HTTPS)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--secret-env",
    default=DEFAULT_SECRET_ENV,
    show_default=True,
    help="Environment variable holding the secret the campaigns sign links with.",
)
@click.option(
    "--send-log",
    "send_log",
    metavar="PATH|URL",
    help="Also record unsubscribes in this send log (e.g. the postgresql:// URL every sending "
    "machine uses), besides the project's suppression.txt.",
)
@clean_errors
def unsubscribe_server(
    project: Path, host: str, port: int, secret_env: str, send_log: str | None
) -> None:
    """Serve one-click unsubscribe links (GET confirms, POST unsubscribes) until Ctrl-C.

    Put it behind the HTTPS address in the campaigns' unsubscribe.url; needs the
    'unsubscribe' extra (pip install 'harkat-mail[unsubscribe]').
    """
    try:
        from ..web.unsubscribe import ServerThread, StoreRecord, make_app, union_names
    except ImportError:
        raise ConfigError(
            "the unsubscribe server needs aiohttp: pip install 'harkat-mail[unsubscribe]'"
        ) from None
    signer = Signer(secret_from_env(secret_env, required=True))
    suppression = project.resolve() / "suppression.txt"
    names = union_names(_campaigns(project))
    if send_log:  # both: every machine reads the store, and this project's file still applies
        app = make_app(signer, suppression, StoreRecord(send_log), names=names)
        where = f"{suppression} and {send_log}"
    else:
        app, where = make_app(signer, suppression, names=names), str(suppression)
    server = ServerThread(app, host, port).start()
    click.echo(f"unsubscribe server on http://{host}:{server.port}, recording to {where}")
    until_interrupted(server.stop)
