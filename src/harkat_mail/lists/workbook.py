"""Writing an Excel workbook (a report's Summary and Members sheets): openpyxl lives here,
with the rest of the spreadsheet handling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

from ..errors import ConfigError


def write_workbook(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]]) -> None:
    """One sheet per entry, the first row bold as headers; text never runs as a formula."""
    book = Workbook()
    for empty in book.worksheets:  # a new workbook has one empty sheet
        book.remove(empty)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        widths: dict[int, int] = {}
        for r, values in enumerate(rows, start=1):
            for c, value in enumerate(values, start=1):
                cell = sheet.cell(row=r, column=c, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # "=1+1" from a member list stays text
                if r == 1:
                    cell.font = Font(bold=True)
                widths[c] = max(widths.get(c, 0), min(len(str(value)), 60))
        for c, width in widths.items():
            sheet.column_dimensions[sheet.cell(row=1, column=c).column_letter].width = width + 2
        sheet.freeze_panes = "A2"
    try:
        book.save(path)
    except OSError as exc:
        raise ConfigError(f"--output {path}: cannot write ({exc.strerror or exc})") from None
