"""Hostile member files: devices, pipes, huge and bomb files end in one line and exit 2, fast."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
SHEET = "xl/worksheets/sheet1.xml"


def _check(*args: str) -> tuple[int, list[str]]:
    """Run ``harkat-mail lists check ...`` in-process: exit code and output lines."""
    result = CliRunner().invoke(main, ["lists", "check", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


def _check_in_subprocess(path: Path) -> tuple[int, list[str]]:
    """The same, as a user runs it; a timeout turns a hang into a failure, not a stuck suite."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "harkat_mail", "lists", "check", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()


def _special_file(kind: str, tmp_path: Path) -> Path:
    if kind == "device":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero here")
        return Path("/dev/zero")
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(tmp_path / "members.csv")
        return tmp_path / "members.csv"
    if kind == "directory":
        (tmp_path / "members.csv").mkdir()
        return tmp_path / "members.csv"
    with open(tmp_path / "members.csv", "wb") as sparse:  # 2 GiB that costs no disk
        sparse.truncate(2 * 1024**3)
    return tmp_path / "members.csv"


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("device", "is a device, not a regular file"),
        ("fifo", "is a named pipe, not a regular file"),
        ("directory", "is a directory, not a regular file"),
        (
            "sparse",
            "is 2048.0 MiB, over the limit of 512 MiB; "
            "raise it in the campaign YAML with list: {max_mb: 2048} or more",
        ),
    ],
)
def test_devices_pipes_folders_and_huge_files_are_refused_unread(
    kind: str, says: str, tmp_path: Path
) -> None:
    """/dev/zero, a FIFO, a folder and a 2 GiB file exit 2 at once with one line naming the file."""
    path = _special_file(kind, tmp_path)
    started = time.monotonic()
    code, lines = _check_in_subprocess(path)
    assert code == 2
    assert lines == [f"harkat-mail: {path}: the member list {says}"]
    assert time.monotonic() - started < 60  # unguarded, these run for minutes or forever


def test_campaign_max_mb_sets_the_size_limit(project: Path, tmp_path: Path) -> None:
    """list.max_mb in the YAML lowers or raises the limit; a bad value names the key."""
    members = tmp_path / "big.csv"
    row = "someone@example.org,Some,One,en,active,101,implied\n"
    members.write_text("email,first_name,last_name,language,status,local,consent\n" + row * 40_000)
    assert 1024**2 < members.stat().st_size < 3 * 1024**2
    yaml = project.read_text(encoding="utf-8")
    project.write_text(yaml.replace("  segment: active\n", "  segment: active\n  max_mb: 1\n"))
    code, lines = _check(str(members), "--campaign", str(project))
    size = members.stat().st_size / 1024**2
    assert code == 2
    assert lines == [
        f"harkat-mail: {members}: the member list is {size:.1f} MiB, over the limit of 1 MiB; "
        "raise it in the campaign YAML with list: {max_mb: 2} or more"
    ]
    project.write_text(yaml.replace("  segment: active\n", "  segment: active\n  max_mb: 3\n"))
    code, lines = _check(str(members), "--campaign", str(project))
    assert code == 0 and lines[0] == f"{members}: 40000 rows read, 1 kept, 39999 rejected"
    project.write_text(yaml.replace("  segment: active\n", "  segment: active\n  max_mb: 0\n"))
    code, lines = _check(str(members), "--campaign", str(project))
    assert code == 2 and len(lines) == 1
    assert "list.max_mb" in lines[0] and "expected a whole number from 1 to" in lines[0]


def _workbook_parts() -> dict[str, bytes]:
    """The parts of a real one-row workbook, as pandas (openpyxl) writes it."""
    buffer = io.BytesIO()
    pd.DataFrame({"email": ["a@example.org"]}).to_excel(buffer, index=False)
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _bomb(path: Path, rows_mib: int, level: int) -> Path:
    """A valid workbook whose sheet holds ``rows_mib`` MiB of identical rows, streamed."""
    row = b'<row><c t="inlineStr"><is><t>bomb@example.org</t></is></c></row>'
    chunk = row * (1024**2 // len(row))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, data in _workbook_parts().items():
            if name != SHEET:
                archive.writestr(name, data)
        with archive.open(SHEET, "w", force_zip64=True) as sheet:
            sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml')
            sheet.write(b'/2006/main"><sheetData>')
            for _ in range(rows_mib):
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
    return path


def test_zip_bomb_workbook_is_refused_before_parsing(tmp_path: Path) -> None:
    """A few-MB .xlsx whose sheet unpacks to 1 GiB exits 2 at once, naming size and limit."""
    path = _bomb(tmp_path / "bomb.xlsx", 1024, level=1)
    assert path.stat().st_size < 10 * 1024**2
    started = time.monotonic()
    code, lines = _check(str(path))
    assert time.monotonic() - started < 10
    assert code == 2
    assert lines == [
        f"harkat-mail: {path}: the workbook unpacks to 1024.0 MiB, over the limit of 512 MiB "
        "(a zip bomb, or a very large sheet); raise it in the campaign YAML with "
        "list: {max_mb: 1025} or more"
    ]


def test_small_zip_bomb_under_the_size_limit_is_refused_by_its_ratio(tmp_path: Path) -> None:
    """A 64 MiB sheet packed hundreds to one (real sheets: about 15:1) exits 2 as a likely bomb."""
    path = _bomb(tmp_path / "small-bomb.xlsx", 64, level=9)
    code, lines = _check(str(path))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"harkat-mail: {path}: the workbook part {SHEET} inflates ")
    assert "refused as a likely zip bomb" in lines[0] and "save the sheet as CSV" in lines[0]


def test_genuine_workbook_of_thousands_of_rows_passes_the_ratio_check(tmp_path: Path) -> None:
    """A 20,000-row export with a repetitive column reads in full: the bomb checks leave it be."""
    path = tmp_path / "export.xlsx"
    rows = 20_000
    pd.DataFrame(
        {
            "email": [f"member{i}@example.org" for i in range(rows)],
            "status": ["active"] * rows,
            "language": ["fr"] * rows,
        }
    ).to_excel(path, index=False)
    code, lines = _check(str(path))
    assert code == 0 and lines[0] == f"{path}: {rows} rows read, {rows} kept, 0 rejected"


def test_file_named_xlsx_that_is_not_a_workbook_gives_one_line(tmp_path: Path) -> None:
    """A CSV or an old .xls renamed .xlsx exits 2 saying it is not an .xlsx workbook."""
    path = tmp_path / "members.xlsx"
    path.write_text("email\na@example.org\n", encoding="utf-8")
    code, lines = _check(str(path))
    assert code == 2
    assert lines == [
        f"harkat-mail: {path}: not an .xlsx workbook (no zip archive inside); an old .xls or "
        "a password-protected workbook must be saved again as .xlsx or CSV"
    ]


def test_workbook_with_an_xml_entity_bomb_gives_one_line(tmp_path: Path) -> None:
    """A sheet whose XML defines a billion-laughs entity exits 2 with one line, quickly."""
    entities = '<!ENTITY e0 "laughlaughlaughlaugh">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10)
    )
    path = tmp_path / "laughs.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _workbook_parts().items():
            if name == SHEET:
                data = f"<!DOCTYPE worksheet [{entities}]>".encode() + data.replace(
                    b"a@example.org", b"&e9;"
                )
            archive.writestr(name, data)
    code, lines = _check(str(path))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"harkat-mail: {path}: cannot read the workbook (ParseError: ")


def test_angle_bracket_cells_are_read_in_linear_time(tmp_path: Path) -> None:
    """Cells shaped to make a Name <address> pattern backtrack are rejected at once."""
    path = tmp_path / "m.csv"
    cells = [" " * 200_000 + "<", '"' + " " * 200_000 + "<a@b.org", "x" * 200_000 + " <a b@c.org>"]
    path.write_text("email\n" + "\n".join(f'"{c.replace(chr(34), chr(34) * 2)}"' for c in cells))
    started = time.perf_counter()
    code, lines = _check(str(path))
    assert code == 0 and lines[0].endswith("3 rows read, 0 kept, 3 rejected")
    assert time.perf_counter() - started < 30  # quadratic backtracking would take hours
