"""Hostile or careless campaign files: each ends in one line naming file, line and key, fast."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from harkat_mail.campaign import load_campaign

from .helpers import edit, line_of, refused, run_cli


def _one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "Traceback" not in out
    return lines[0]


def _alias_bomb() -> str:
    """The "billion laughs": ten lines that would expand to 10^10 values."""
    names = "abcdefghij"
    lines = ["  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_one_line_through_the_cli(project: Path) -> None:
    """validate on a billion-laughs campaign exits 2 at once with one line naming file and line."""
    edit(project, "vars:\n", "vars:\n" + _alias_bomb())
    code, out = run_cli("validate", str(project))
    assert code == 2
    line = line_of(project, "  b: &b")
    assert _one_line(out).startswith(f"harkat-mail: {project}:{line}: vars.b.0: *a repeats a list")
    assert "aliases to lists and maps are refused" in out


def test_recursive_alias_isrefused(project: Path) -> None:
    """A map that contains an alias to itself is refused instead of recursing forever."""
    edit(project, "vars:\n", "vars: &v\n  self: *v\n")
    message = refused(project)
    assert f"sept2018.yaml:{line_of(project, 'self: *v')}: vars.self: *v repeats" in message


def test_alias_to_a_plain_value_still_works(project: Path) -> None:
    """An anchor on one value, reused with an alias, loads as that value (only lists/maps are refused)."""
    edit(project, "  contact: solidarity@", "  contact: &solidarity solidarity@")
    edit(
        project,
        'reply_to:\n  en: "CUPW Solidarity <solidarity@cupw.example.org>"\n  fr: "STTP Solidarité <solidarite@cupw.example.org>"',
        "reply_to: *solidarity",
    )
    assert dict(load_campaign(project).reply_to) == {"en": "solidarity@cupw.example.org"}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/object/apply:os.system [echo hi]", "!!python/object/apply:os.system"),
        ("!foo bar", "!foo"),
        ("!!binary aGk=", "!!binary"),
        ("!!set {a, b}", "!!set"),
    ],
)
def test_unknown_tags_are_refused_naming_the_line(project: Path, value: str, shown: str) -> None:
    """A YAML tag other than the plain types is one error naming the tag, the key and its line."""
    edit(project, "vars:\n", f"vars:\n  hook: {value}\n")
    message = refused(project)
    assert f"sept2018.yaml:{line_of(project, 'hook:')}: vars.hook: the tag {shown} " in message
    assert "is not allowed" in message


def test_python_tag_is_one_line_through_the_cli(project: Path) -> None:
    """validate with !!python/name:os.system exits 2 with one line, not a constructor traceback."""
    edit(project, "vars:\n", "vars:\n  hook: !!python/name:os.system\n")
    code, out = run_cli("validate", str(project))
    assert code == 2
    line = line_of(project, "hook:")
    assert _one_line(out).startswith(f"harkat-mail: {project}:{line}: vars.hook: the tag ")


def test_deep_nesting_isrefused(project: Path) -> None:
    """5,000 nested lists are refused at level 50 with one line, not a RecursionError."""
    edit(project, "vars:\n", "vars:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n")
    code, out = run_cli("validate", str(project))
    assert code == 2
    line = line_of(project, "deep:")
    assert _one_line(out).startswith(f"harkat-mail: {project}:{line}: vars.deep.0.0")
    assert out.strip().endswith("nested more than 50 levels deep")


def test_too_many_values_arerefused(project: Path) -> None:
    """A list of more than 100,000 values is refused (a campaign needs a few dozen)."""
    edit(project, "vars:\n", "vars:\n  many: [" + "1," * 100_001 + "1]\n")
    message = refused(project)
    assert f"sept2018.yaml:{line_of(project, 'many:')}: vars.many." in message
    assert "more than 100,000 values in one file" in message


def test_oversized_file_is_refused_before_parsing(project: Path) -> None:
    """A campaign file over 1 MB is refused by its size, naming the file."""
    edit(project, "vars:\n", "# " + "x" * 1_100_000 + "\nvars:\n")
    message = refused(project)
    assert message.startswith(f"{project}: 1,1") and "at most 1 MB" in message


@pytest.mark.parametrize("kind", ["folder", "device", "pipe"])
def test_a_path_that_is_not_a_regular_file_isrefused(tmp_path: Path, kind: str) -> None:
    """A folder, /dev/zero or a FIFO as the campaign is one line saying what it is; nothing hangs."""
    path = {"folder": tmp_path, "device": Path("/dev/zero"), "pipe": tmp_path / "fifo"}[kind]
    if kind == "pipe":
        os.mkfifo(path)  # no writer: a plain open() would wait forever
    code, out = run_cli("validate", str(path))
    assert code == 2
    assert _one_line(out) == (
        f"harkat-mail: {path}: a {kind}, not a campaign file; give the path of a .yaml"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2018-13-45", "not a valid date (month must be in 1..12)"),
        ("1" * 5000, "not a valid whole number (Exceeds the limit (4300 digits)"),
    ],
)
def test_values_that_cannot_be_read_name_their_line(
    project: Path, value: str, message: str
) -> None:
    """An impossible date or a 5,000-digit number is one error naming the key and line."""
    edit(project, "vars:\n", f"vars:\n  when: {value}\n")
    assert f":{line_of(project, 'when:')}: vars.when: {message}" in refused(project)


def test_plain_equals_sign_is_text(project: Path) -> None:
    """A value written as a bare = is the text "=" (not YAML 1.1's value tag, which crashed)."""
    edit(project, "vars:\n", "vars:\n  separator: =\n")
    assert load_campaign(project).vars["separator"] == "="


def test_merge_keys_arerefused(project: Path) -> None:
    """A '<<' merge key is refused by name instead of crashing or merging silently."""
    edit(project, "vars:\n", "vars:\n  <<: {donate_url: https://evil.example}\n")
    message = refused(project)
    assert f":{line_of(project, '<<:')}: vars: '<<' merge keys are not supported" in message


def test_control_character_names_its_line(project: Path) -> None:
    """A control character in the file is refused with the line it is on."""
    edit(project, "  video_url:", "  video_url: \x07")
    message = refused(project)
    assert f"sept2018.yaml line {line_of(project, 'video_url')}: not valid YAML: " in message


def test_file_that_is_not_utf8_names_its_line(project: Path) -> None:
    """A Windows-1252 byte in the file is refused naming its line, not a decode traceback."""
    data = project.read_bytes().replace(b"vars:\n", b"vars:\n  city: Montr\xe9al\n")
    project.write_bytes(data)
    line = next(n for n, row in enumerate(data.split(b"\n"), 1) if b"city:" in row)
    assert refused(project) == f"{project}:{line}: not UTF-8 text; save the file as UTF-8"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("purpose: commercial\n", "", "purpose: missing; it says why members get this message"),
        (
            "purpose: commercial",
            "purpose:",
            "purpose: expected informational or commercial, got nothing",
        ),
        (
            "smtp: local",
            "smtp: local\nbilingual:",
            "bilingual: expected separate or combined, got nothing",
        ),
    ],
)
def test_missing_or_empty_choices_read_well(
    project: Path, old: str, new: str, message: str
) -> None:
    """A missing or empty choice says what to write, never "got None"."""
    edit(project, old, new)
    text = refused(project)
    assert message in text and "None" not in text


def test_missing_purpose_says_what_to_write(project: Path) -> None:
    """Without purpose the message says what the key is for (CASL) and what to write."""
    edit(project, "purpose: commercial\n", "")
    assert refused(project) == (
        f"{project}: purpose: missing; it says why members get this message (CASL: "
        "fundraising, sales and paid events are commercial): write `purpose: informational` "
        "or `purpose: commercial`"
    )
