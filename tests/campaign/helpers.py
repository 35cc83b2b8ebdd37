"""What the campaign tests share: the CLI, edits to the sample YAML, expected refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.campaign import load_campaign
from harkat_mail.cli import main
from harkat_mail.errors import ConfigError


def run_cli(*args: str) -> tuple[int, str]:
    """Exit code and output of one command."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def edit(project: Path, old: str, new: str) -> Path:
    """Replace ``old`` (which must be there) by ``new`` in the campaign file."""
    text = project.read_text(encoding="utf-8")
    assert old in text, old
    project.write_text(text.replace(old, new), encoding="utf-8")
    return project


def line_of(project: Path, needle: str) -> int:
    """The 1-based line of the campaign file holding ``needle``."""
    for number, line in enumerate(project.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def refused(project: Path) -> str:
    """The ConfigError loading the campaign raises."""
    with pytest.raises(ConfigError) as info:
        load_campaign(project)
    return str(info.value)
