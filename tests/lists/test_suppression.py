"""Suppression files: whatever the unsubscribe server writes, the next campaign skips."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from harkat_mail.errors import ContactListError
from harkat_mail.lists import add_suppression, check_address, load_contacts, read_suppressions
from harkat_mail.models import ContactList, ListConfig

SRC = Path(__file__).resolve().parents[2] / "src"


def _verdicts(folder: Path, addresses: list[str], suppress: Path) -> dict[str, str]:
    """Load a member list of ``addresses`` with ``suppress``: address -> "kept" or the reason."""
    members = folder / "members.csv"
    with members.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(["email", "first_name"])
        writer.writerows([address, "A"] for address in addresses)
    result: ContactList = load_contacts(
        ListConfig(paths=(members,), suppress=(suppress,)), "language", "en"
    )
    outcomes = sorted(
        [(c.row, "kept") for c in result.contacts] + [(r.row, r.reason) for r in result.rejected]
    )
    return dict(zip(addresses, [verdict for _, verdict in outcomes], strict=True))


@settings(max_examples=150, deadline=None)
@given(st.emails())
@example("#news@example.org")
@example("#@example.org")
@example("X@Y.Example")
@example("Jean.Roy@EXAMPLE.ORG")
@example("a@xn--bcher-kva.example")
@example("o'brien+news@example.org")
@example("{x}|~!$%&*/=?^`@example.org")
def test_every_valid_address_unsubscribed_is_suppressed(address: str) -> None:
    """Any address email-validator accepts, once add_suppression records it, is never sent to."""
    assume(check_address(address)[0] is not None)  # else no campaign could send to it
    with tempfile.TemporaryDirectory() as folder:
        suppression = Path(folder) / "suppression.txt"
        assert add_suppression(suppression, address, "unsubscribed", "news.example.org")
        assert not add_suppression(suppression, address, "unsubscribed", "news.example.org")
        bystander = "bystander@example.net"
        verdicts = _verdicts(Path(folder), [address, bystander], suppression)
        assert verdicts == {address: "suppressed", bystander: "kept"}


def test_hash_address_is_suppressed_and_comments_still_are_comments(tmp_path: Path) -> None:
    """#news@example.org written by the server is suppressed; '# ... a@b' lines stay comments."""
    suppression = tmp_path / "suppression.txt"
    add_suppression(suppression, "#news@example.org", "unsubscribed", "l.example.org")
    with suppression.open("a", encoding="utf-8") as handle:
        handle.write("# ask before sending to ana@example.org again\n#--- bounces ---\n")
    verdicts = _verdicts(tmp_path, ["#news@example.org", "ana@example.org"], suppression)
    assert verdicts == {"#news@example.org": "suppressed", "ana@example.org": "kept"}


def test_older_files_read_as_before(tmp_path: Path) -> None:
    """Old headers, plain, quoted, noted and @domain lines, and an 'email' header all still work."""
    suppression = tmp_path / "suppression.txt"
    suppression.write_text(
        "# harkat-mail project-wide suppression list: every campaign skips these.\n"
        "# One address or @domain per line; after a comma: why, when, which list.\n"
        "email\n"
        "plain@example.org\n"
        '"Quoted@Example.org"\n'
        "noted@example.org,unsubscribed 2018-09-20T10:00:00Z,sept2018.cupw.example.org\n"
        "@bounced.example\n"
        "whole.example\n"
        "\n",
        encoding="utf-8",
    )
    addresses = [
        "plain@example.org",
        "quoted@example.org",
        "Noted@Example.ORG",
        "x@bounced.example",
        "y@whole.example",
        "ok@example.org",
    ]
    verdicts = _verdicts(tmp_path, addresses, suppression)
    assert verdicts == {a: "suppressed" for a in addresses[:-1]} | {"ok@example.org": "kept"}


def test_punycode_and_unicode_spellings_match_each_other(tmp_path: Path) -> None:
    """A domain suppressed in its xn-- form matches list rows spelled in Unicode, and back."""
    suppression = tmp_path / "suppression.txt"
    suppression.write_text(
        "a@XN--BCHER-KVA.example\n@xn--caf-dma.example\nb@bücher.example\n", encoding="utf-8"
    )
    addresses = ["a@bücher.example", "z@café.example", "b@xn--bcher-kva.example"]
    verdicts = _verdicts(tmp_path, addresses, suppression)
    assert verdicts == {a: "suppressed" for a in addresses}


def test_windows_1252_suppression_file_reads(tmp_path: Path) -> None:
    """A suppression file saved by an old spreadsheet as Windows-1252 still suppresses."""
    suppression = tmp_path / "suppression.txt"
    suppression.write_bytes("ana@example.org,désabonnée\n".encode("cp1252"))
    verdicts = _verdicts(tmp_path, ["ana@example.org"], suppression)
    assert verdicts == {"ana@example.org": "suppressed"}


def test_suppression_path_that_is_a_folder_is_one_error(tmp_path: Path) -> None:
    """A suppression 'file' that is a folder stops the load with one message naming it."""
    with pytest.raises(ContactListError) as caught:
        read_suppressions([tmp_path])
    assert (
        str(caught.value) == f"{tmp_path}: the suppression file is a directory, not a regular file"
    )


def test_notes_cannot_inject_a_line(tmp_path: Path) -> None:
    """Commas and line breaks in the reason or list id stay on the address's own line."""
    suppression = tmp_path / "suppression.txt"
    add_suppression(suppression, "a@example.org", "why,\nb@example.org", "l,\nc@example.org")
    entries = suppression.read_text(encoding="utf-8").splitlines()[-1:]
    assert entries[0].startswith("a@example.org,why b@example.org ")
    assert read_suppressions([suppression]) == ({"a@example.org"}, set())


def test_import_works_without_fcntl() -> None:
    """harkat_mail and its suppression module import where fcntl does not exist (Windows)."""
    code = (
        "import sys; sys.modules['fcntl'] = None; import harkat_mail, harkat_mail.lists.suppression"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_windows_locking_writes_and_releases(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without fcntl, msvcrt.locking guards the write: the line lands and every lock is released."""
    calls: list[tuple[int, int]] = []
    msvcrt = types.ModuleType("msvcrt")
    msvcrt.LK_LOCK, msvcrt.LK_UNLCK = 1, 0  # type: ignore[attr-defined]
    msvcrt.locking = lambda fd, mode, n: calls.append((mode, n))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    suppression = tmp_path / "suppression.txt"
    assert add_suppression(suppression, "Ana@Example.org", "unsubscribed", "l.example.org")
    assert calls == [(1, 1), (0, 1)]
    assert read_suppressions([suppression]) == ({"ana@example.org"}, set())


def test_no_lock_available_is_one_error_at_call_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With neither fcntl nor msvcrt, recording says so naming the file, and writes nothing."""
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", None)
    suppression = tmp_path / "suppression.txt"
    with pytest.raises(ContactListError) as caught:
        add_suppression(suppression, "ana@example.org", "unsubscribed", "l.example.org")
    assert str(caught.value) == (
        f"{suppression}: cannot lock the suppression file: this Python has neither fcntl nor msvcrt"
    )
    assert not suppression.exists()


def test_a_batch_is_one_append_of_the_new_entries_only(tmp_path: Path) -> None:
    """add_suppressions writes each new address once, keeps what is there, skips the unwritable."""
    from harkat_mail.lists.suppression import add_suppressions

    path = tmp_path / "suppression.txt"
    add_suppression(path, "old@example.org", "unsubscribed", "list-1")
    before = path.read_text(encoding="utf-8")
    added = add_suppressions(
        path,
        [("New@Example.org", "bounced hard 5.1.1"), ("old@example.org", "again"),
         ("new@example.org", "twice"), ("no address", "junk"), ("b@example.net", "complained")],
        "list-1",
    )
    assert added == {"new@example.org", "b@example.net"}
    text = path.read_text(encoding="utf-8")
    assert text.startswith(before) and text.count("new@example.org") == 1
    assert "bounced hard 5.1.1" in text and "again" not in text and "junk" not in text
    assert read_suppressions([path])[0] == {"old@example.org", "new@example.org", "b@example.net"}
    assert add_suppressions(path, [("b@example.net", "x")], "list-1") == set()
    assert path.read_text(encoding="utf-8") == text
