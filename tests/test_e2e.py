"""End to end through the CLI and real SMTP: the sample appeal, delivered and logged."""

from __future__ import annotations

import csv
import mailbox
import subprocess
import sys
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.lists import check_address


def _has_consent(value: str) -> bool:
    """CASL, read independently: a current member (implied), or express consent with a date."""
    words = value.strip().lower().split()
    if words in (["implied"], ["implicite"], ["member"]):
        return True
    return len(words) == 2 and words[0] in ("express", "exprès") and words[1] <= str(date.today())


def _expected(project: Path) -> dict[str, dict[str, str]]:
    """Independent reading of the sample list: valid, first-of-duplicates, active, consenting."""
    rows = list(csv.DictReader((project.parent.parent / "lists" / "members.csv").open()))
    out: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    for row in rows:
        email, _ = check_address(row["email"].strip())
        if email is None or email.lower() in seen:
            continue
        seen.add(email.lower())
        if row["status"].strip().lower() == "active" and _has_consent(row["consent"]):
            out[email.lower()] = row
    return out


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_send_delivers_one_message_per_valid_active_member(project: Path, smtp_server) -> None:
    """Each valid active member gets exactly one message, in their language, with their name."""
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    expected = _expected(project)
    received = [m.rcpt_tos[0].lower() for m in handler.messages]
    assert sorted(received) == sorted(expected)
    for delivered in handler.messages:
        msg = delivered.message
        row = expected[delivered.rcpt_tos[0].lower()]
        lang = row["language"].strip().lower()[:2]
        french = lang in ("fr", "fa")  # "Français", "french"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert ("Bonjour" in text) == french
        assert msg["Content-Language"] == ("fr" if french else "en")
        first = " ".join(row["first_name"].split())
        assert first.lower() in html.lower() and first.lower() in text.lower()
        assert msg["Message-ID"] and msg["Date"] and msg["List-Id"]
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert handler.connections <= 4


def test_invalid_and_duplicate_rows_get_nothing_and_are_reported(
    project: Path, smtp_server
) -> None:
    """Invalid and duplicate rows receive nothing and show up in the summary and the report."""
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    assert "5 duplicate" in out and "5 invalid address" in out and "1 missing address" in out
    code, report = _run("report", str(project), "--format", "csv")
    rows = list(csv.DictReader(report.splitlines()))
    skipped = [r for r in rows if r["state"] == "skipped"]
    assert {r["reason"].split(" ")[0] for r in skipped} >= {"duplicate", "invalid", "missing"}
    received = [m.rcpt_tos[0].lower() for m in handler.messages]
    assert len(received) == len(set(received))  # a duplicate row adds no second copy
    invalid = {r["email"].lower() for r in skipped if r["reason"].startswith("invalid")}
    assert len(invalid) == 5 and not invalid & set(received)


def test_second_send_delivers_nothing(project: Path, smtp_server) -> None:
    """Running send again delivers zero messages and says the log already has everyone."""
    server, handler = smtp_server()
    url = f"smtp://127.0.0.1:{server.port}"
    assert _run("send", str(project), "--smtp", url, "--yes")[0] == 0
    first = len(handler.messages)
    code, out = _run("send", str(project), "--smtp", url, "--yes")
    assert code == 0
    assert len(handler.messages) == first
    assert "nothing new to send" in out


def test_limit_then_resume_sends_each_member_once(project: Path, smtp_server) -> None:
    """A run cut short by --limit resumes with the rest; nobody gets two copies."""
    server, handler = smtp_server()
    url = f"smtp://127.0.0.1:{server.port}"
    assert _run("send", str(project), "--smtp", url, "--yes", "--limit", "40")[0] == 0
    assert len(handler.messages) == 40
    assert _run("send", str(project), "--smtp", url, "--yes")[0] == 0
    received = [m.rcpt_tos[0].lower() for m in handler.messages]
    assert len(received) == len(set(received)) == len(_expected(project))


def test_dry_run_opens_no_connection_and_writes_previews(project: Path, smtp_server) -> None:
    """--dry-run renders everyone, connects to nothing, and writes .eml/.html per language."""
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--dry-run", "--smtp", f"smtp://127.0.0.1:{server.port}")
    assert code == 0, out
    assert handler.connections == 0 and handler.messages == []
    previews = project.parent.parent / "previews" / "sept2018"
    names = sorted(p.name for p in previews.iterdir())
    assert names == ["en.eml", "en.html", "fr.eml", "fr.html", "index.html"]
    index = (previews / "index.html").read_text(encoding="utf-8")
    assert "<td>active</td><td>fr</td>" in index
    assert not (project.parent.parent / "outbox" / "sept2018.sendlog.sqlite").exists()


def test_local_relay_fills_the_maildir_and_status_agrees(project: Path) -> None:
    """The sample's embedded relay files one Maildir message per recipient; status matches."""
    code, out = _run("send", str(project))
    assert code == 0, out
    box = mailbox.Maildir(str(project.parent.parent / "outbox" / "sept2018"), create=False)
    expected = _expected(project)
    assert len(box) == len(expected)
    assert "messages/s" in out
    code, status = _run("status", str(project))
    assert f"sent          {len(expected)}" in status
    code, again = _run("send", str(project))
    assert code == 0 and "nothing new to send" in again
    assert len(box) == len(expected)


def test_bad_yaml_exits_2_with_one_line(project: Path, smtp_server) -> None:
    """Malformed YAML exits 2 with one line naming the file and line, and sends nothing."""
    server, handler = smtp_server()
    project.write_text(project.read_text() + "\nvars: [unclosed\n", encoding="utf-8")
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "sept2018.yaml line " in lines[0] and "not valid YAML" in lines[0]
    assert handler.connections == 0


def test_undefined_variable_exits_2_before_any_message(project: Path, smtp_server) -> None:
    """A template using a variable nobody defines exits 2 naming it; nothing is delivered."""
    server, handler = smtp_server()
    fr = project.parent.parent / "templates" / "harkat-appeal" / "fr.html"
    fr.write_text(fr.read_text().replace("{{ donate_url }}", "{{ donation_link }}"))
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 2
    assert "fr.html" in out and "donation_link" in out
    assert len(out.strip().splitlines()) == 1
    assert handler.connections == 0


def test_real_relay_needs_confirmation_without_a_terminal(project: Path, smtp_server) -> None:
    """Without --yes and without a terminal, sending to a real relay is refused, exit 2."""
    server, handler = smtp_server()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harkat_mail",
            "send",
            str(project),
            "--smtp",
            f"smtp://127.0.0.1:{server.port}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "--yes" in result.stderr and "through 127.0.0.1" in result.stderr
    assert handler.messages == []


def test_rejected_recipients_fail_and_exit_1(project: Path, smtp_server) -> None:
    """A 550 at RCPT marks that member failed, others are delivered, and the exit code is 1."""
    server, handler = smtp_server(nadia=("rcpt", "550 5.1.1 No such user"))
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 1
    failed = [e for e in _expected(project) if "nadia" in e]
    assert failed and f"failed {len(failed)}" in out
    assert len(handler.messages) == len(_expected(project)) - len(failed)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out.extend(_commands(command, (*prefix, name)))
    return out


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    """Each command, subcommand and option has its own help text, and --help shows it."""
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert (command.help or "").strip(), f"{' '.join(path)} has no description"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help"
    code, out = _run(*path, "--help")
    assert code == 0 and command.help.strip().splitlines()[0][:40] in " ".join(out.split())
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in out


def test_test_to_sends_one_test_per_language_and_logs_nothing(project: Path, smtp_server) -> None:
    """--test-to sends one [TEST] message per language to each staff address, unlogged."""
    server, handler = smtp_server()
    code, out = _run(
        "send",
        str(project),
        "--smtp",
        f"smtp://127.0.0.1:{server.port}",
        "--yes",
        "--test-to",
        "staff@example.org",
        "--test-to",
        "editor@example.org",
    )
    assert code == 0, out
    assert "4 of 4 test messages accepted" in out
    by_rcpt = sorted((m.rcpt_tos[0], m.message["Content-Language"]) for m in handler.messages)
    assert by_rcpt == [
        ("editor@example.org", "en"),
        ("editor@example.org", "fr"),
        ("staff@example.org", "en"),
        ("staff@example.org", "fr"),
    ]
    assert all(m.message["Subject"].startswith("[TEST as ") for m in handler.messages)
    assert all(m.message["To"] == m.rcpt_tos[0] for m in handler.messages)
    assert not (project.parent.parent / "outbox" / "sept2018.sendlog.sqlite").exists()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0 and len(handler.messages) == 4 + len(_expected(project))


def test_test_to_reaches_the_local_relay(project: Path) -> None:
    """With the embedded relay, test messages land in outbox/sept2018-tests, not the real outbox."""
    code, out = _run("send", str(project), "--test-to", "staff@example.org")
    assert code == 0, out
    assert not (project.parent.parent / "outbox" / "sept2018").exists()
    box = mailbox.Maildir(str(project.parent.parent / "outbox" / "sept2018-tests"), create=False)
    subjects = sorted(
        str(message_from_bytes(box.get_bytes(key), policy=policy.default)["Subject"])
        for key in box.iterkeys()
    )
    assert len(subjects) == 2 and all(s.startswith("[TEST as ") for s in subjects)


def test_status_shows_last_errors_and_report_is_formula_safe(project: Path, smtp_server) -> None:
    """status lists the latest errors; the CSV report neutralises cells a spreadsheet would run."""
    # A refusal that does not say the address is dead stays `failed` (a hard one is `bounced`).
    server, _ = smtp_server(nadia=("rcpt", "550 =HYPERLINK(requested action not taken)"))
    _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    code, status = _run("status", str(project))
    assert "last errors:" in status and "failed 550" in status
    code, report = _run("report", str(project), "--format", "csv")
    rows = list(csv.DictReader(report.splitlines()))
    failed = [r for r in rows if r["state"] == "failed"]
    assert failed and all(r["reply"] == "'=HYPERLINK(requested action not taken)" for r in failed)
    assert {
        "email",
        "member_id",
        "language",
        "state",
        "attempts",
        "code",
        "reply",
        "message_id",
        "created_at",
        "updated_at",
    } <= set(rows[0])


@pytest.mark.slow
def test_large_runs_render_in_a_worker_process(project: Path, smtp_server, monkeypatch) -> None:
    """With the render worker in use, each member still gets exactly one, personalised message."""
    from harkat_mail.run import claims, renderpool

    monkeypatch.setattr(renderpool, "POOL_FROM", 10)
    monkeypatch.setattr(claims, "CLAIM_BATCH", 40)
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    expected = _expected(project)
    assert sorted(m.rcpt_tos[0].lower() for m in handler.messages) == sorted(expected)
    for delivered in handler.messages:
        first = " ".join(expected[delivered.rcpt_tos[0].lower()]["first_name"].split())
        assert first.lower() in delivered.message.get_body(("plain",)).get_content().lower()


def test_rejects_file_has_every_reason_and_is_formula_safe(project: Path, tmp_path: Path) -> None:
    """validate --rejects writes one CSV row per skipped row, with reasons, formula-safe."""
    members = project.parent.parent / "lists" / "members.csv"
    members.write_text(
        members.read_text(encoding="utf-8") + "M1,=cmd|' /C calc'!A0,X,Y,1,ON,en,active,implied\n",
        encoding="utf-8",
    )
    out_file = tmp_path / "rejects.csv"
    code, out = _run("validate", str(project), "--rejects", str(out_file))
    assert code == 0, out
    rows = list(csv.DictReader(out_file.open(encoding="utf-8")))
    reasons = {r["reason"].split(" ")[0] for r in rows}
    assert reasons == {"duplicate", "invalid", "missing", "outside", "no"}
    kept = len(_expected(project))
    assert len(rows) == 202 - kept
    hostile = [r for r in rows if "calc" in r["email"]]
    assert hostile and hostile[0]["email"].startswith("'=")
    code, checked = _run("lists", "check", str(members), "--campaign", str(project))
    assert f"202 rows read, {kept} kept, {202 - kept} rejected" in checked


def test_windows_1252_list_gives_correct_to_headers(project: Path, smtp_server) -> None:
    """A Windows-1252, ';'-separated French export reaches the To header correctly encoded."""
    members = project.parent.parent / "lists" / "members.csv"
    members.write_bytes(
        "Courriel;Prénom;Nom;Langue;Statut;Section locale;Consentement\n"
        "helene@example.org;Hélène;Bélanger;Français;actif;12;implicite\n"
        "francois@example.org;François;Côté;FR;active;12;exprès 2017-05-01\n".encode("cp1252")
    )
    text = project.read_text(encoding="utf-8").replace(
        "active: {status: active}", "active: {status: [active, actif]}"
    )
    project.write_text(text, encoding="utf-8")
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    to = sorted(str(m.message["To"]) for m in handler.messages)
    assert to == ["François Côté <francois@example.org>", "Hélène Bélanger <helene@example.org>"]
    assert all(b"=?utf-8?" in m.data.split(b"\r\n\r\n")[0] for m in handler.messages)


def test_project_wide_suppression_applies_to_every_campaign(project: Path, smtp_server) -> None:
    """An address in the project's suppression.txt is skipped as suppressed by any campaign."""
    expected = _expected(project)
    victim = sorted(expected)[0]
    (project.parent.parent / "suppression.txt").write_text(f"{victim}\n", encoding="utf-8")
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0 and "1 suppressed" in out
    assert victim not in {m.rcpt_tos[0].lower() for m in handler.messages}
    assert len(handler.messages) == len(expected) - 1


@pytest.mark.parametrize("command", ["validate", "send"])
def test_unwritable_rejects_path_is_one_line(project: Path, tmp_path: Path, command: str) -> None:
    """--rejects into a folder that does not exist: exit 2, one line naming the path."""
    target = tmp_path / "no-such-folder" / "rejects.csv"
    extra = ["--dry-run"] if command == "send" else []
    result = CliRunner().invoke(main, [command, str(project), *extra, "--rejects", str(target)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("harkat-mail:")]
    assert errors == [f"harkat-mail: --rejects {target}: cannot write (No such file or directory)"]
    assert "Traceback" not in result.output and not target.exists()
