"""Member lists: every row kept or rejected with one reason; cleaning is safe on any input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harkat_mail.errors import ContactListError
from harkat_mail.lists import check_address, load_contacts, normalise_language
from harkat_mail.models import ListConfig

HEADER = "email,first_name,last_name,language,status\n"


def _members(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    """Write a member export ``m.csv`` (UTF-8) and return its path."""
    path = tmp_path / "m.csv"
    path.write_text(header + rows, encoding="utf-8")
    return path


def _load(path: Path, **kwargs: object) -> object:
    return load_contacts(ListConfig(paths=(path,), **kwargs), "language", "en")  # type: ignore[arg-type]


def test_sample_list_accounts_for_every_row() -> None:
    """Rows read equal rows kept plus rows rejected, each rejection with a reason."""
    repo = Path(__file__).resolve().parents[2]
    result = _load(
        repo / "lists" / "members.csv", segment={"status": "active"}, segment_name="active"
    )
    assert result.rows_read == len(result.contacts) + len(result.rejected)
    assert all(r.reason for r in result.rejected)
    assert len({c.key for c in result.contacts}) == len(result.contacts)


def test_trims_and_dedupes_case_insensitively(tmp_path: Path) -> None:
    """Stray spaces are trimmed and a case-only duplicate is rejected naming the first row."""
    path = _members(
        tmp_path,
        "  Ana.Roy@Example.ORG ,ana,ROY, EN ,active\nana.roy@example.org,Ana,Roy,en,active\n",
    )
    result = _load(path)
    assert [c.email for c in result.contacts] == ["Ana.Roy@example.org"]
    assert result.contacts[0].first_name == "Ana" and result.contacts[0].last_name == "Roy"
    assert result.contacts[0].language == "en"
    assert result.rejected[0].reason == "duplicate of m.csv row 2"  # header = row 1


def test_names_are_normalised_once_per_spelling(tmp_path: Path) -> None:
    """Decomposed accents become NFC, whitespace runs one space, shouting Title Case; mixed case stays."""
    decomposed = "Ce\u0301line"
    rows = "".join(
        f"m{i}@example.org,{first},{last},en,active\n"
        for i, (first, last) in enumerate(
            [
                (decomposed, "MacDonald"),
                ("  MARIE\t ANNE ", "côté"),
                (decomposed, "de\u00a0la Fontaine"),
            ]
        )
    )
    result = _load(_members(tmp_path, rows))
    names = [(c.first_name, c.last_name) for c in result.contacts]
    assert names == [
        ("C\u00e9line", "MacDonald"),
        ("Marie Anne", "Côté"),
        ("C\u00e9line", "de la Fontaine"),
    ]


def test_invalid_and_missing_addresses_are_rejected(tmp_path: Path) -> None:
    """Addresses email-validator refuses, and empty ones, are rejected with their reason."""
    path = _members(
        tmp_path,
        "x@gmail..com,A,B,en,active\n,C,D,en,active\nok@example.org,E,F,fr,active\n",
    )
    result = _load(path)
    reasons = [r.reason for r in result.rejected]
    assert reasons[0].startswith("invalid address") and reasons[1] == "missing address"
    assert [c.email for c in result.contacts] == ["ok@example.org"]


def test_segment_ignores_case_and_spaces(tmp_path: Path) -> None:
    """status: active keeps 'Active' and ' ACTIVE ' and rejects 'retired' as outside segment."""
    path = _members(
        tmp_path,
        "a@example.org,A,A,en,Active\nb@example.org,B,B,en, ACTIVE \n"
        "c@example.org,C,C,en,retired\n",
    )
    result = _load(path, segment={"status": "active"}, segment_name="active")
    assert [c.email for c in result.contacts] == ["a@example.org", "b@example.org"]
    assert result.rejected[0].reason == "outside segment active"


def test_windows_1252_semicolon_export_keeps_accents(tmp_path: Path) -> None:
    """A ';'-delimited Windows-1252 export with French headers reads without mojibake."""
    path = tmp_path / "export.csv"
    text = "Courriel;Prénom;Nom;Langue\nhelene@example.org;Hélène;Bélanger;Français\n"
    path.write_bytes(text.encode("cp1252"))
    result = _load(path)
    contact = result.contacts[0]
    assert (contact.first_name, contact.last_name, contact.language) == ("Hélène", "Bélanger", "fr")


def test_missing_email_column_lists_headers(tmp_path: Path) -> None:
    """A list without an address column is an error listing the headers it has."""
    path = tmp_path / "m.csv"
    path.write_text("name,phone\nA,1\n", encoding="utf-8")
    with pytest.raises(ContactListError, match=r"m.csv: no email column \(found: name, phone\)"):
        _load(path)


def test_suppression_by_address_and_domain(tmp_path: Path) -> None:
    """Suppressed addresses and whole domains are rejected as suppressed."""
    path = _members(
        tmp_path,
        "a@example.org,A,A,en,active\nb@bounce.example,B,B,en,active\n"
        "c@example.org,C,C,en,active\n",
    )
    suppress = tmp_path / "suppress.txt"
    suppress.write_text("A@example.org\n@bounce.example\n", encoding="utf-8")
    result = _load(path, suppress=(suppress,))
    assert [c.email for c in result.contacts] == ["c@example.org"]
    assert [r.reason for r in result.rejected] == ["suppressed", "suppressed"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [("EN", "en"), (" english ", "en"), ("Français", "fr"), ("", "en"), ("klingon", None)],
)
def test_language_values_are_normalised(raw: str, code: str | None) -> None:
    """Language spellings map to codes; blanks get the default; unknown ones are flagged."""
    assert normalise_language(raw, "en") == code


addresses = st.one_of(
    st.emails().map(str),
    st.sampled_from(
        [
            "x@gmail..com",
            "a@b",
            "@example.org",
            "a@@example.org",
            "a b@example.org",
            "ÉLODIE@example.org",
            "a@example.org.",
            ".a@example.org",
        ]
    ),
).flatmap(lambda a: st.sampled_from([a, a.upper(), f"  {a} ", a.lower()]))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(addresses, min_size=1, max_size=25))
def test_cleaning_never_keeps_two_rows_with_one_address(tmp_path_factory, rows: list[str]) -> None:
    """Whatever the input, kept addresses are unique, valid, and read = kept + rejected."""
    path = tmp_path_factory.mktemp("h") / "m.csv"
    body = "".join(f'"{r.replace(chr(34), "")}",A,B,en,active\n' for r in rows)
    path.write_text(HEADER + body, encoding="utf-8")
    result = _load(path)
    keys = [c.key for c in result.contacts]
    assert len(keys) == len(set(keys))
    assert result.rows_read == len(rows) == len(result.contacts) + len(result.rejected)
    assert all(check_address(c.email)[0] == c.email for c in result.contacts)


def test_segment_operators(tmp_path: Path) -> None:
    """in-lists, not, numeric between and presence combine; no text is ever evaluated."""
    path = tmp_path / "m.csv"
    path.write_text(
        "email,province,local,status,phone\n"
        "a@example.org,ON,120,active,555\n"
        "b@example.org, qc ,199,Active,\n"
        "c@example.org,BC,150,active,555\n"
        "d@example.org,ON,200,active,555\n"
        "e@example.org,ON,x12,retired,555\n",
        encoding="utf-8",
    )
    segment = {
        "province": ["ON", "QC"],
        "local": {"between": [100, 199]},
        "status": {"not": "retired"},
    }
    result = _load(path, segment=segment, segment_name="central")
    assert [c.email for c in result.contacts] == ["a@example.org", "b@example.org"]
    with_phone = _load(path, segment={"phone": {"present": True}}, segment_name="p")
    assert "b@example.org" not in [c.email for c in with_phone.contacts]
    with pytest.raises(ContactListError, match="unknown operator 'eval'"):
        _load(path, segment={"status": {"eval": "__import__('os')"}}, segment_name="bad")


def test_excel_first_sheet_or_named_sheet(tmp_path: Path) -> None:
    """An .xlsx export reads from its first sheet, or the sheet the campaign names."""
    import pandas as pd

    path = tmp_path / "export.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"Courriel": ["a@example.org"], "Prénom": ["Élise"]}).to_excel(
            writer, sheet_name="Membres", index=False
        )
        pd.DataFrame({"E-mail": ["b@example.org", "bad@"], "First Name": ["Bo", "X"]}).to_excel(
            writer, sheet_name="Retraités", index=False
        )
    first = _load(path)
    assert [(c.email, c.first_name) for c in first.contacts] == [("a@example.org", "Élise")]
    named = _load(path, sheet="Retraités")
    assert [c.email for c in named.contacts] == ["b@example.org"]
    assert named.rejected[0].row == 3 and named.rejected[0].reason.startswith("invalid")


def test_quoted_fields_with_line_breaks_and_bom(tmp_path: Path) -> None:
    """A UTF-8-with-BOM, tab-separated export with a line break inside a quoted field reads whole."""
    path = tmp_path / "m.tsv"
    path.write_bytes(
        "\ufeffemail\tfirst_name\tnotes\n"
        'a@example.org\tZoë\t"line one\nline two"\nb@example.org\tLéa\t\n'.encode()
    )
    result = _load(path)
    assert [c.first_name for c in result.contacts] == ["Zoë", "Léa"]
    assert result.contacts[0].fields["notes"] == "line one\nline two"
    assert (result.sources[0].encoding, result.sources[0].delimiter) == ("utf-8 with BOM", "tab")


def test_undecodable_bytes_name_the_line_and_byte(tmp_path: Path) -> None:
    """Bytes that are neither UTF-8 nor Windows-1252 stop the load naming line and byte."""
    path = tmp_path / "m.csv"
    path.write_bytes(b"email,first_name\na@example.org,Ren\x81e\n")
    with pytest.raises(ContactListError, match=r"m.csv: line 2: byte 0x81"):
        _load(path)


def test_dedupe_by_member_id_keeps_one_message_per_address(tmp_path: Path) -> None:
    """By member id: a member's second row is a duplicate; a shared address still gets one."""
    path = tmp_path / "m.csv"
    path.write_text(
        "member_id,email\nM1,old@example.org\nM1,new@example.org\nM2,family@example.org\n"
        "M3,family@example.org\n,solo@example.org\n",
        encoding="utf-8",
    )
    result = _load(path, dedupe_by="member_id")
    assert [c.email for c in result.contacts] == [
        "old@example.org",
        "family@example.org",
        "solo@example.org",
    ]
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, "duplicate of m.csv row 2"),
        (5, "duplicate of m.csv row 4"),
    ]


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(addresses, min_size=1, max_size=20))
def test_cleaning_is_idempotent_and_keeps_every_valid_unique_address(
    tmp_path_factory, rows: list[str]
) -> None:
    """Cleaning the kept rows again changes nothing; each valid address is kept once."""
    folder = tmp_path_factory.mktemp("i")
    first = folder / "a.csv"
    first.write_text(
        HEADER + "".join(f'"{r.replace(chr(34), "")}",A,B,en,active\n' for r in rows),
        encoding="utf-8",
    )
    once = _load(first)
    valid = {check_address(r.replace('"', "").strip())[0] for r in rows} - {None}
    assert {c.key for c in once.contacts} == {v.lower() for v in valid if v}
    second = folder / "b.csv"
    second.write_text(
        HEADER
        + "".join(
            f"{c.email},{c.first_name},{c.last_name},{c.language},active\n" for c in once.contacts
        ),
        encoding="utf-8",
    )
    twice = _load(second)
    assert [(c.email, c.first_name, c.language) for c in twice.contacts] == [
        (c.email, c.first_name, c.language) for c in once.contacts
    ]
    assert twice.rejected == ()


class _Resolver:
    """A DNS resolver answering from a table: the deliverability check without a network."""

    def resolve(self, name: str, rdtype: str) -> list[object]:
        from types import SimpleNamespace

        import dns.resolver

        if name.rstrip(".") == "gone.example.org":
            raise dns.resolver.NXDOMAIN
        if rdtype == "MX":
            return [SimpleNamespace(preference=10, exchange=f"mx.{name}.")]
        raise dns.resolver.NoAnswer


def test_deliverability_check_rejects_domains_that_do_not_exist(tmp_path: Path) -> None:
    """validate: deliverability asks DNS; a domain that does not exist is rejected, named."""
    from harkat_mail.lists.cleaning import clean_list

    path = tmp_path / "m.csv"
    path.write_text("email\nok@mail.example.org\nx@gone.example.org\n", encoding="utf-8")
    config = ListConfig(paths=(path,), deliverability=True)
    frame = clean_list(config, "language", "en", dns_resolver=_Resolver()).frame
    assert frame["_reason"].tolist()[0] == ""
    assert "gone.example.org does not exist" in frame["_reason"].tolist()[1]
