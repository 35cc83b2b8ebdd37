"""Header safety on the send path: any member name or subject, no line over 998, no injection."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harkat_mail.campaign import load_campaign
from harkat_mail.mail.message import header_safe
from harkat_mail.mail.mime import VariantMessages
from harkat_mail.models import Contact, RenderedContent

CAMPAIGN = load_campaign(Path(__file__).resolve().parents[2] / "campaigns" / "sept2018.yaml")
ADDRESS = "o.neil+news@cupw.example.org"
UNSUBSCRIBE = "https://cupw.example.org/unsubscribe?t=2abc"
# Exactly these, in this order: a member value that smuggled in a header would add one.
HEADERS = [
    "From",
    "Reply-To",
    "List-Id",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Content-Language",
    "MIME-Version",
    "Content-Type",
]
NAME_CAP, SUBJECT_CAP = 200, 400


def _cleaned(value: str, chars: int, keep_no_break: bool = False) -> str:
    """What a reader should see: header_safe, then ``chars`` characters and 3x as many octets."""
    text = header_safe(value, keep_no_break)[:chars]
    return text.encode("utf-8")[: 3 * chars].decode("utf-8", "ignore").rstrip(" ")


def _build(first: str, last: str, subject: str) -> tuple[bytes, Contact]:
    contact = Contact(
        key=ADDRESS, email=ADDRESS, row=1, source="m.csv", language="fr", first_name=first,
        last_name=last,
    )  # fmt: skip
    content = RenderedContent(subject=subject, html="<p>x</p>", text="x")
    return VariantMessages(CAMPAIGN, "fr").build(contact, content, UNSUBSCRIBE).data, contact


def _header_lines(data: bytes, name: bytes) -> list[bytes]:
    """The raw lines of one header field: its first line and its continuation lines."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(name + b":"))
    end = start + 1
    while end < len(lines) and lines[end][:1] in (b" ", b"\t"):
        end += 1
    return lines[start:end]


def _check(data: bytes, contact: Contact, subject: str) -> EmailMessage:
    """What a relay and a reader observe, asserted; returns the parsed message."""
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.split(b"\r\n\r\n", 1)[0].isascii()
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg.keys() == HEADERS
    assert msg.defects == []
    to = msg["To"]
    assert len(to.addresses) == 1 and to.defects == ()
    assert to.addresses[0].addr_spec == contact.email
    assert to.addresses[0].display_name == _cleaned(contact.display_name, NAME_CAP)
    assert str(msg["Subject"]) == _cleaned(subject, SUBJECT_CAP, keep_no_break=True)
    assert all(len(line) <= 78 for line in _header_lines(data, b"Subject"))
    return msg


HOSTILE = [*'ab é\r\n\0\t\x0b\x1f\x7f\x85\u2028\xa0:;,."\\<>()@=?_\U0001f600']
piece = st.text(
    alphabet=st.sampled_from(HOSTILE) | st.characters(blacklist_categories=("Cs",)), max_size=60
)
SMUGGLED = base64.b64encode(b"x\r\nBcc: victim@example.org").decode()
lookalike = st.builds(
    lambda charset, enc, text: f"=?{charset}?{enc}?{text}?=",
    st.sampled_from(["utf-8", "UTF-8", "iso-8859-1"]),
    st.sampled_from("qQbB"),
    st.sampled_from(["=0D=0ABcc:_victim@example.org", SMUGGLED, "H=C3=A9l=C3=A8ne", ""]),
)
huge = st.builds(
    lambda unit, times: unit * times,
    st.text(alphabet=st.sampled_from(HOSTILE), min_size=1, max_size=3),
    st.integers(min_value=100, max_value=70_000),
)
values = st.lists(st.one_of(piece, lookalike, huge), max_size=4).map("".join)


@settings(max_examples=300, deadline=None)
@given(first=values, last=values, subject=values)
def test_any_name_and_subject_give_safe_lines_and_the_cleaned_values(
    first: str, last: str, subject: str
) -> None:
    """Any name and subject: lines within 998, the same headers, exact address, cleaned values."""
    data, contact = _build(first, last, subject)
    _check(data, contact, subject)


@pytest.mark.parametrize(
    "unit", ["a", "é", "漢", "\U0001f600", "Ana Roy ", '"\\,', "=?utf-8?q?x?="]
)
def test_a_200000_character_name_and_subject_are_capped_and_folded(unit: str) -> None:
    """A 200,000-character name or subject: every line within 998, name capped at 200 chars."""
    long = (unit * 200_000)[:200_000]
    data, contact = _build(long, "", long)
    msg = _check(data, contact, long)
    name = msg["To"].addresses[0].display_name
    assert 0 < len(name) <= NAME_CAP and long.startswith(name)
    assert 0 < len(str(msg["Subject"])) <= SUBJECT_CAP


def test_line_breaks_in_a_name_never_reach_the_wire_as_a_header() -> None:
    """CR/LF/NUL in a name and an encoded line break stay in the display name, no Bcc appears."""
    first = "Ana\r\nBcc: victim@example.org\0"
    subject = f"Hi =?utf-8?b?{SMUGGLED}?= \nBcc: x@example.org"
    data, contact = _build(first, f"=?utf-8?q?=0D=0ABcc:_victim@example.org?= {first}", subject)
    msg = _check(data, contact, subject)
    assert msg["Bcc"] is None and b"\r\nBcc:" not in data
    assert "Bcc: victim@example.org" in msg["To"].addresses[0].display_name


def test_usual_names_and_subjects_stay_on_short_readable_lines() -> None:
    """A usual name and a long ASCII subject: lines within 78, the subject folded at spaces."""
    subject = "Mohamed Harkat must stay in Canada: three ways to help, and why it matters now"
    data, contact = _build('Jean-François "Jeff"', "Côté", subject)
    _check(data, contact, subject)
    assert all(len(line) <= 78 for line in _header_lines(data, b"To"))
    lines = _header_lines(data, b"Subject")
    assert len(lines) == 2 and b"=?" not in b"".join(lines)
