"""The mistakes staff really make are caught before anything is sent, in words they can act on:
a language key typo, an empty first name in the subject or greeting, a YAML indentation slip,
a key with the wrong kind of value."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import edit, line_of, run_cli


def _send_dry(project: Path) -> tuple[int, str]:
    return run_cli("send", str(project), "--dry-run")


@pytest.mark.parametrize("command", ["validate", "dry-run", "send"])
def test_language_key_typo_is_refused_everywhere(project: Path, command: str, smtp_server) -> None:
    """`fn:` for `fr:` under subject stops validate, the dry run and the send, naming the line."""
    edit(project, '  fr: "Mohamed Harkat doit', '  fn: "Mohamed Harkat doit')
    server, handler = smtp_server()
    args = {
        "validate": ("validate", str(project)),
        "dry-run": ("send", str(project), "--dry-run"),
        "send": ("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes"),
    }[command]
    code, out = run_cli(*args)
    assert code == 2
    line = line_of(project, "fn:")
    assert out.strip().endswith(
        f"sept2018.yaml:{line}: subject.fn: 'fn' is not a language of the template (it has "
        "en, fr: harkat-appeal/<language>.html); did you mean 'fr'?"
    )
    assert handler.connections == 0
    assert not (project.parent.parent / "previews" / "sept2018").exists()


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("    fr: Syndicat des", "    fn: Syndicat des", "identification.name.fn"),
        ('  fr: "STTP Bureau', '  FR: "STTP Bureau', "from.FR"),
        ('  fr: "STTP Solidarité', '  rf: "STTP Solidarité', "reply_to.rf"),
        ('    fr: "Permettez', '    fn: "Permettez', "letter.subject.fn"),
        ("    fr: https://harkat.example.org/lettre", "    fR: https://harkat.example.org/lettre", "letter.full_url.fR"),
    ],
)
def test_every_per_language_key_is_checked(project: Path, old: str, new: str, key: str) -> None:
    """from, reply_to, identification.name and the letter's keys are checked like subject."""
    edit(project, old, new)
    code, out = run_cli("validate", str(project))
    assert code == 2
    assert f": {key}: " in out and "is not a language of the template" in out
    assert out.strip().endswith("did you mean 'fr'?")


def test_empty_first_name_in_subject_and_greeting_is_warned(project: Path) -> None:
    """A bare first_name in the subject and greeting warns with the count and the first rows."""
    members = project.parent.parent / "lists" / "members.csv"
    text = members.read_text(encoding="utf-8")
    members.write_text(
        text + "".join(
            f"M9{i},blank{i}@example.org,,Roy,5,ON,en,active,implied\n" for i in range(7)
        ),
        encoding="utf-8",
    )
    first_new = len(text.splitlines()) + 1  # the header is row 1
    edit(project, '  en: "Mohamed Harkat must', '  en: "{{ first_name }}, Mohamed Harkat must')
    template = project.parent.parent / "templates" / "harkat-appeal" / "en.html"
    template.write_text(
        template.read_text().replace('Dear {{ first_name or "member" }}', "Dear {{ first_name }}")
    )
    rows = ", ".join(str(first_new + i) for i in range(5))
    for args in (("validate", str(project)), ("send", str(project), "--dry-run")):
        code, out = run_cli(*args)
        assert code == 0, out
        for place in ("subject", "greeting"):
            assert (
                f"en {place} uses first_name, empty for 7 members (members.csv rows {rows}, ...); "
                "use {{ first_name | default('member') }}"
            ) in out


def test_default_filter_fills_an_empty_cell(project: Path, smtp_server) -> None:
    """With `| default('member')` there is no warning and the subject reads "member, ..."."""
    members = project.parent.parent / "lists" / "members.csv"
    members.write_text(
        members.read_text(encoding="utf-8") + "M99,blank@example.org,,Roy,5,ON,en,active,implied\n",
        encoding="utf-8",
    )
    edit(
        project,
        '  en: "Mohamed Harkat must',
        "  en: \"{{ first_name | default('member') }}, Mohamed Harkat must",
    )
    code, out = run_cli("validate", str(project))
    assert code == 0 and "uses first_name" not in out
    server, handler = smtp_server()
    code, out = run_cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    blank = next(m.message for m in handler.messages if m.rcpt_tos[0] == "blank@example.org")
    assert blank["Subject"].startswith("member, Mohamed Harkat must")


def test_indentation_slip_is_explained_at_its_line(project: Path) -> None:
    """A key indented one space too far reads as plain words pointing at the line."""
    edit(project, "  mailing_address: 100", "   mailing_address: 100")
    code, out = run_cli("validate", str(project))
    line = line_of(project, "mailing_address")
    assert code == 2
    assert f"sept2018.yaml line {line}: not valid YAML: the indentation does not line up" in out
    assert "<block" not in out and "reads '   mailing_address: 100 Example Street" in out


def test_expected_errors_say_what_the_key_is_for(project: Path) -> None:
    """A value of the wrong kind says what the key does and shows a line to write."""
    edit(project, "  default: en", "  default: [en]")
    code, out = run_cli("validate", str(project))
    assert code == 2
    assert out.strip().endswith(
        "language.default: expected a non-empty string, got a list "
        "(the language of members with none); write `default: en`"
    )


def test_a_relay_written_as_a_number_says_what_smtp_takes(project: Path) -> None:
    """`smtp: 25` names the forms smtp: takes (local, a map, a list) and shows two to write."""
    edit(project, "smtp: local", "smtp: 25")
    code, out = run_cli("validate", str(project))
    assert code == 2
    line = line_of(project, "smtp: 25")
    assert f"sept2018.yaml:{line}: smtp: expected local, a map of relay settings or a list" in out
    assert "got int" in out and "write `smtp: local` or `smtp: {host: " in out


def test_timezone_typo_suggests_the_zone(project: Path) -> None:
    """timezone: must be an IANA name; a typo names the nearest one."""
    edit(project, "timezone: America/Toronto", "timezone: America/Toronot")
    code, out = run_cli("validate", str(project))
    assert code == 2 and "did you mean 'America/Toronto'?" in out
    assert _send_dry(project)[0] == 2
