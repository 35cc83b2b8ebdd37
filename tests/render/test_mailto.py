"""mailto: links per RFC 6068: the RFC's own examples, and any text back through urllib."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harkat_mail.render.mailto import mailto


def _parse(link: str) -> tuple[list[str], dict[str, str]]:
    """What a mail client reads from a link: the addresses and each header, decoded."""
    parts = urlsplit(link)
    assert parts.scheme == "mailto" and not parts.fragment
    to = [unquote(a) for a in parts.path.split(",") if a]
    return to, dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))


@pytest.mark.parametrize(
    ("to", "fields", "expected"),
    [  # RFC 6068 sections 6.1 and 6.2
        (["chris@example.com"], {}, "mailto:chris@example.com"),
        (
            ["infobot@example.com"],
            {"body": "send current-issue"},
            "mailto:infobot@example.com?body=send%20current-issue",
        ),
        (
            ["infobot@example.com"],
            {"body": "send current-issue\r\nsend index"},
            "mailto:infobot@example.com?body=send%20current-issue%0D%0Asend%20index",
        ),
        (
            ["majordomo@example.com"],
            {"body": "subscribe bamboo-l"},
            "mailto:majordomo@example.com?body=subscribe%20bamboo-l",
        ),
        (
            ["joe@example.com"],
            {"cc": ["bob@example.com"], "body": "hello"},
            "mailto:joe@example.com?cc=bob@example.com&body=hello",
        ),
        (["gorby%kremvax@example.com"], {}, "mailto:gorby%25kremvax@example.com"),
        (["Mike&family@example.org"], {}, "mailto:Mike%26family@example.org"),
        (['"not@me"@example.org'], {}, "mailto:%22not%40me%22@example.org"),
        (['"oh\\\\no"@example.org'], {}, "mailto:%22oh%5C%5Cno%22@example.org"),
        (
            ['"\\\\\\"it\'s\\ ugly\\\\\\""@example.org'],
            {},
            "mailto:%22%5C%5C%5C%22it's%5C%20ugly%5C%5C%5C%22%22@example.org",
        ),
        (["user@example.org"], {"subject": "café"}, "mailto:user@example.org?subject=caf%C3%A9"),
    ],
)
def test_rfc_6068_examples(to: list[str], fields: dict, expected: str) -> None:
    """The encoder writes the RFC's example links exactly, from their decoded meaning."""
    assert mailto(to, **fields) == expected


def test_rfc_6068_header_examples_read_back() -> None:
    """Other headers (In-Reply-To, the RFC's blat=foop) are written and read back decoded."""
    link = mailto(["list@example.org"], headers=[("In-Reply-To", "<3469A91.D10AF4C@example.com>")])
    assert link == "mailto:list@example.org?In-Reply-To=%3C3469A91.D10AF4C%40example.com%3E"
    assert _parse(link)[1] == {"In-Reply-To": "<3469A91.D10AF4C@example.com>"}
    link = mailto(["unlikely?address@example.com"], headers=[("blat", "foop")])
    assert link == "mailto:unlikely%3Faddress@example.com?blat=foop"
    assert _parse(link) == (["unlikely?address@example.com"], {"blat": "foop"})


def test_reserved_characters_and_line_breaks_are_encoded() -> None:
    """Spaces are %20 (never +), line breaks CRLF, and & = # % + ? stay inside their value."""
    body = "Tom & Jerry = 100% + more? #1\nline two\r\n\nafter a blank line"
    link = mailto(["minister@ps-sp.example.org"], subject="Objet : « oui » ?", body=body)
    query = link.split("?", 1)[1]
    assert "+" not in link and " " not in link and "#" not in link
    assert query.count("&") == 1 and query.count("=") == 2  # only the separators
    assert "line%20two%0D%0A%0D%0Aafter" in query and "%0A" not in query.replace("%0D%0A", "")
    to, fields = _parse(link)
    assert to == ["minister@ps-sp.example.org"]
    assert fields == {
        "subject": "Objet : « oui » ?",
        "body": "Tom & Jerry = 100% + more? #1\r\nline two\r\n\r\nafter a blank line",
    }


def test_every_address_in_to_and_cc_is_read_back() -> None:
    """Several addresses: commas between them, each one's odd characters encoded."""
    link = mailto(["a+b@example.org", "c=d@example.org"], cc=["e@example.org", "f&g@example.org"])
    assert link == "mailto:a+b@example.org,c%3Dd@example.org?cc=e@example.org,f%26g@example.org"
    to, fields = _parse(link)
    assert to == ["a+b@example.org", "c=d@example.org"]
    assert fields["cc"].split(",") == ["e@example.org", "f&g@example.org"]


@given(
    subject=st.text(st.characters(exclude_categories=("Cs", "Cc"))),
    body=st.lists(st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")))).map(
        "\n".join
    ),
)
def test_any_text_round_trips_through_urllib(subject: str, body: str) -> None:
    """Whatever a member's name or a letter holds, urllib decodes the link back to it."""
    link = mailto(["minister@ps-sp.example.org"], subject=subject, body=body)
    assert all(33 <= ord(c) < 127 for c in link)  # one ASCII token: nothing to break it
    _, fields = _parse(link)
    assert fields.get("subject", "") == subject
    assert fields.get("body", "") == body.replace("\n", "\r\n")
