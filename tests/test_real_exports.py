"""Real exports just work, as a new user would try them: an Outlook CSV and an Excel workbook
with their own headers, regional language codes, "Name <address>" cells, Excel date cells
for consent and blank lines; row numbers, rejects and reports a person can find rows by."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import openpyxl
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.lists.reading import read_table
from harkat_mail.reports import LANGUAGE_HEADING, SEGMENT_HEADING

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")

OUTLOOK = (
    "First Name,Middle Name,Last Name,E-mail Address,E-mail Display Name,Member #,Language,"
    "Consent,Local\n"
    "Élise,,Côté,elise@example.ca,Élise Côté,1042,fr-CA,express 2019-05-01,5\n"
    ',,,"""Roy, Ana"" <ana.roy@example.org>",,1043,en_CA,implied,5\n'
    "\n"
    "Bob,,Smith,bob@@example.org,,1044,English,implied,5\n"
    "Zed,,Ng,zed@example.org,,1045,Klingon,implied,\n"
)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _use_list(project: Path, name: str, extra: str = "") -> None:
    """Point the sample campaign (in Toronto time) at lists/<name>, with no segment."""
    text = project.read_text(encoding="utf-8")
    assert "timezone: America/Toronto" in text
    old = "  path: ../lists/members.csv\n  segment: active\n"
    project.write_text(text.replace(old, f"  path: ../lists/{name}\n") + extra, encoding="utf-8")


def _outlook(project: Path) -> Path:
    path = project.parent.parent / "lists" / "outlook.csv"
    path.write_text(OUTLOOK, encoding="utf-8")
    _use_list(project, "outlook.csv")
    return path


def test_outlook_export_validates_with_spreadsheet_rows(project: Path, tmp_path: Path) -> None:
    """An Outlook export is read as is: aliases, fr-CA, a Name <address> cell, real row numbers."""
    _outlook(project)
    rejects = tmp_path / "rejects.csv"
    code, out = _run("validate", str(project), "--rejects", str(rejects))
    assert code == 0, out
    assert "sept2018: 4 rows read, 3 to send" in out
    assert "all / en: 2" in out and "all / fr: 1" in out
    # the blank line is row 4, so Zed is row 6, as the spreadsheet shows it
    assert (
        "warning: 1 member has a language that is not recognised; they get the default (en): "
        "outlook.csv row 6"
    ) in out
    rows = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(r["row"], r["member_id"], r["name"], r["email"]) for r in rows] == [
        ("5", "1044", "Bob Smith", "bob@@example.org")
    ]
    assert rows[0]["reason"].startswith("invalid address")


def test_outlook_export_delivers_in_each_language(project: Path, smtp_server) -> None:
    """fr-CA gets French, the name in "Roy, Ana" <addr> greets Ana, and the report names rows."""
    _outlook(project)
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    by_rcpt = {m.rcpt_tos[0]: m.message for m in handler.messages}
    assert sorted(by_rcpt) == ["ana.roy@example.org", "elise@example.ca", "zed@example.org"]
    assert by_rcpt["elise@example.ca"]["Content-Language"] == "fr"
    assert "Bonjour Élise" in by_rcpt["elise@example.ca"].get_body(("plain",)).get_content()
    assert "Dear Ana," in by_rcpt["ana.roy@example.org"].get_body(("plain",)).get_content()
    code, report = _run("report", str(project), "--format", "json")
    assert code == 0
    rows = {r["email"]: r for r in json.loads(report)}
    ana = rows["ana.roy@example.org"]
    assert (ana["name"], ana["member_id"], ana["row"], ana["state"]) == ("Ana Roy", "1043", 3, "sent")
    assert ISO.match(ana["created_at"]) and ISO.match(ana["updated_at"])
    assert ana["created_at"][-6:] in ("-05:00", "-04:00")  # America/Toronto
    bob = next(r for r in rows.values() if r["member_id"] == "" and r["row"] == 5)
    assert bob["name"] == "Bob Smith" and bob["state"] == "skipped"


def _workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["E-mail 1 - Value", "Given Name", "Family Name", "No de membre", "Langue",
                  "Consentement", "Section locale"])  # fmt: skip
    sheet.append(["lea@example.org", "Léa", "Tremblay", "2001", "Français", dt.date(2018, 3, 14)])
    sheet.append([None, None, None, None, None, None])  # a blank row: row 3
    sheet.append(["Omar Haddad <omar@example.org>", None, None, "2002", "EN", "implied"])
    sheet.append(["kim@example.org", "Kim", "Lee", "2003", "FR", dt.date(2999, 1, 1)])
    sheet.append(["@SUM(1)", "Eve", "Bad", "2004", "en", "implied"])
    book.save(path)


def test_excel_workbook_reads_dates_aliases_and_rows(project: Path, tmp_path: Path) -> None:
    """An .xlsx with Google-style headers: a date cell is express consent; rows are Excel's."""
    _workbook(project.parent.parent / "lists" / "members.xlsx")
    _use_list(project, "members.xlsx")
    rejects = tmp_path / "rejects.csv"
    code, out = _run("validate", str(project), "--rejects", str(rejects))
    assert code == 0, out
    assert "sept2018: 4 rows read, 2 to send" in out
    assert "all / en: 1" in out and "all / fr: 1" in out
    rows = {r["row"]: r for r in csv.DictReader(rejects.open(encoding="utf-8"))}
    assert sorted(rows) == ["5", "6"]
    assert rows["5"]["name"] == "Kim Lee" and rows["5"]["member_id"] == "2003"
    assert "express consent dated in the future (2999-01-01)" in rows["5"]["reason"]
    assert rows["6"]["email"] == "'@SUM(1)"  # formula-safe, as every rejects file is


def test_excel_send_and_workbook_report(project: Path, tmp_path: Path, smtp_server) -> None:
    """After a send, -o report.xlsx holds a Summary sheet of counts and a Members sheet."""
    _workbook(project.parent.parent / "lists" / "members.xlsx")
    _use_list(project, "members.xlsx")
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["lea@example.org", "omar@example.org"]
    omar = next(m.message for m in handler.messages if m.rcpt_tos[0] == "omar@example.org")
    assert "Dear Omar," in omar.get_body(("plain",)).get_content()
    output = tmp_path / "report.xlsx"
    code, out = _run("report", str(project), "-o", str(output))
    assert code == 0, out
    book = openpyxl.load_workbook(output)
    assert book.sheetnames == ["Summary", "Members"]
    summary = {(s, i): n for s, i, n in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary[("State", "delivered to the relay")] == 2
    assert summary[("State", "not sent to")] == 2
    language, segment = LANGUAGE_HEADING, SEGMENT_HEADING
    assert summary[(language, "en")] == 1 and summary[(language, "fr")] == 1
    assert summary[(segment, "all")] == 2
    assert summary[("Not sent to, because", "no consent")] == 1
    members = list(book["Members"].iter_rows(values_only=True))
    header = members[0]
    lea = dict(zip(header, next(r for r in members if r[2] == "lea@example.org"), strict=True))
    assert (lea["name"], lea["member_id"], lea["row"]) == ("Léa Tremblay", "2001", 2)
    assert ISO.match(lea["updated_at"])
    eve = next(r for r in members if r[header.index("row")] == 6)
    assert eve[header.index("email")] == "@SUM(1)"  # stored as text, never a formula
    assert book["Members"].cell(row=members.index(eve) + 1, column=3).data_type == "s"


def test_summary_report_reads_as_plain_words(project: Path, smtp_server) -> None:
    """report --format summary counts members per state, language, segment and reason."""
    _outlook(project)
    server, _ = smtp_server()
    assert _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")[0] == 0
    code, out = _run("report", str(project), "--format", "summary")
    assert code == 0
    assert re.match(r"Campaign sept2018 \(commercial\), report of \S+-0[45]:00\n", out)
    assert re.search(r"State:\n  delivered to the relay +3\n  not sent to +1\n", out)
    assert re.search(r"Language \(members sent to or still to send\):\n  en +2\n  fr +1\n", out)
    assert re.search(r"Not sent to, because:\n  invalid address +1\n", out)


def test_two_email_columns_are_refused_naming_both(project: Path) -> None:
    """Two headers that both look like the address are an error naming both, not a guess."""
    path = project.parent.parent / "lists" / "two.csv"
    path.write_text(
        "Email,E-mail Address,First Name,Consent,Local\na@example.org,b@example.org,A,implied,5\n"
    )
    _use_list(project, "two.csv")
    code, out = _run("validate", str(project))
    assert code == 2
    assert "the columns 'Email' and 'E-mail Address' both look like email" in out
    text = project.read_text().replace(
        "  path: ../lists/two.csv\n", "  path: ../lists/two.csv\n  columns: {email: E-mail Address}\n"
    )
    project.write_text(text)
    code, out = _run("validate", str(project))
    assert code == 0 and "1 rows read, 1 to send" in out, out


def test_lists_check_says_how_to_get_every_reject(project: Path) -> None:
    """lists check shows three examples per reason and the command that lists them all."""
    path = project.parent.parent / "lists" / "bad.csv"
    path.write_text(
        "Courriel,Prénom,Nom,Numéro de membre\n"
        + "".join(f"bad{i}@,P{i},N{i},{i}\n" for i in range(5))
    )
    code, out = _run("lists", "check", str(path))
    assert code == 0
    assert "rejected, invalid address: 5" in out
    assert "e.g. bad.csv row 2 (P0 N0, member 0): 'bad0@'" in out
    assert f"harkat-mail lists check {path} --rejects rejects.csv" in out
    code, out = _run("lists", "check", str(path), "--rejects", str(path.with_name("r.csv")))
    assert "--rejects rejects.csv" not in out
    assert len(path.with_name("r.csv").read_text().splitlines()) == 6


def test_quoted_line_breaks_and_blank_lines_number_rows_as_excel(tmp_path: Path) -> None:
    """A quoted cell with a line break is one row and a blank line is a row, as in Excel."""
    path = tmp_path / "m.csv"
    path.write_text('email,notes\na@example.org,"one\ntwo"\n\nb@example.org,x\n')
    frame, _, rows = read_table(path)
    assert list(frame["email"]) == ["a@example.org", "b@example.org"]
    assert rows.tolist() == [2, 4]


def test_summary_counts_the_segment_and_those_outside_it(project: Path, smtp_server) -> None:
    """The sample's summary counts members in the 'active' segment and those outside it."""
    server, _ = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    delivered = int(re.search(r"delivered (\d+)", out).group(1))
    outside = int(re.search(r"(\d+) outside segment", out).group(1))
    code, out = _run("report", str(project), "--format", "summary")
    segment = r"Segment \(members sent to or still to send\):"
    outside_line = rf"outside the segment \(not sent to\) +{outside}"
    assert re.search(rf"{segment}\n  active +{delivered}\n  {outside_line}\n", out)


def test_a_separate_consent_date_column_dates_the_consent(project: Path, tmp_path: Path) -> None:
    """`Consent: Express` beside a `Consent Date` cell (an Excel date) is express consent."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "First Name", "Consent", "Consent Date", "Local"])
    sheet.append(["a@example.org", "Ana", "Express", dt.date(2017, 3, 14), "5"])
    sheet.append(["b@example.org", "Bo", "Express", None, "5"])
    sheet.append(["c@example.org", "Cy", "Express 2016-01-02", dt.date(2017, 3, 14), "5"])
    book.save(project.parent.parent / "lists" / "dated.xlsx")
    _use_list(project, "dated.xlsx")
    rejects = tmp_path / "rejects.csv"
    code, out = _run("validate", str(project), "--rejects", str(rejects))
    assert code == 0 and "3 rows read, 2 to send" in out, out
    (row,) = csv.DictReader(rejects.open(encoding="utf-8"))
    assert row["row"] == "3" and "express consent needs the date it was given" in row["reason"]


def test_blank_lines_before_and_after_keep_the_numbering(tmp_path: Path) -> None:
    """Blank lines above the header shift every row, as in Excel; blank lines at the end don't."""
    path = tmp_path / "m.csv"
    path.write_text("\n\nemail\na@example.org\nb@example.org\n\n\n")
    assert read_table(path)[2].tolist() == [4, 5]


def test_a_consent_date_column_alone_says_how_to_use_it(
    project: Path, smtp_server
) -> None:
    """Only `Consent Date`: validate names it and the columns: line; with that line, dated rows
    are sent through real SMTP and `lists check` reads the workbook without a separator."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email Address", "First Name", "Consent Date", "Local"])
    sheet.append(["a@example.org", "Ana", dt.datetime(2017, 3, 14), "5"])
    sheet.append(["b@example.org", "Bo", None, "5"])
    path = project.parent.parent / "lists" / "dates.xlsx"
    book.save(path)
    _use_list(project, "dates.xlsx")
    code, out = _run("validate", str(project))
    assert code == 2 and "needs a consent column" in out, out
    assert out.strip().endswith(
        "to count a date in 'Consent Date' as express consent, map it: "
        "list: columns: {consent: Consent Date}"
    )
    text = project.read_text(encoding="utf-8")
    old = "  path: ../lists/dates.xlsx\n"
    project.write_text(text.replace(old, old + "  columns: {consent: Consent Date}\n"))
    server, handler = smtp_server()
    code, out = _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    assert [m.rcpt_tos for m in handler.messages] == [["a@example.org"]]
    code, out = _run("lists", "check", str(path))
    assert code == 0 and "  read dates.xlsx: excel sheet 1, 2 rows" in out.splitlines(), out
