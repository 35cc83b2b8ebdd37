"""`bounces`: read returned mail and say what it means for each member."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..bounces import classify, iter_messages, to_json
from ..bounces.classify import Verdict
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
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per message; json: one JSON object per line.",
)
@clean_errors
def check(paths: tuple[Path, ...], fmt: str) -> None:
    """Classify the mail in PATHS (files, .eml folders, Maildirs, mbox files); change nothing."""
    for path in paths:
        for source, data in iter_messages(path):
            verdict = classify(data)
            if fmt == "json":
                click.echo(json.dumps(to_json(source, verdict), ensure_ascii=False))
            else:
                click.echo(describe(source, verdict))
