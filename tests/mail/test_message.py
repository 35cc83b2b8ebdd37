"""MIME messages: parse with the email package, encoded names, no header injection."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harkat_mail.campaign import load_campaign
from harkat_mail.mail.message import build_message, message_id
from harkat_mail.models import Contact, RenderedContent

CONTENT = RenderedContent(subject="Hello", html="<p>Hé</p>", text="Hé\n")


def _contact(first: str = "Hélène", last: str = "Bélanger") -> Contact:
    return Contact(
        key="h@example.org",
        email="h@example.org",
        row=1,
        source="m.csv",
        language="fr",
        first_name=first,
        last_name=last,
    )


def test_message_parses_with_text_first_and_encoded_names(project: Path) -> None:
    """The bytes parse into multipart/alternative, text/plain first, accents intact in To."""
    campaign = load_campaign(project)
    out = build_message(campaign, _contact(), "fr", CONTENT, "https://x.example.org/u?t=1")
    raw_headers = out.data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_headers  # RFC 2047, not raw 8-bit
    msg = message_from_bytes(out.data, policy=policy.default)
    assert str(msg["To"]) == "Hélène Bélanger <h@example.org>"
    assert str(msg["From"]) == "STTP Bureau national <national@cupw.example.org>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://x.example.org/u?t=1>, <mailto:")
    assert msg["Message-ID"] == out.message_id


def test_message_id_is_stable_per_campaign_and_recipient(project: Path) -> None:
    """The same campaign and recipient always get the same Message-ID; others differ."""
    campaign = load_campaign(project)
    assert message_id(campaign, "a@example.org") == message_id(campaign, "a@example.org")
    assert message_id(campaign, "a@example.org") != message_id(campaign, "b@example.org")


@settings(max_examples=80, deadline=None)
@given(
    name=st.text(
        alphabet=st.sampled_from(list('ab é\r\n\0:\t=?"<>')) | st.characters(), max_size=40
    ),
    subject=st.text(max_size=60),
)
def test_no_value_can_inject_a_header(name: str, subject: str) -> None:
    """CR, LF and NUL in names and subjects never create a header such as Bcc."""
    campaign = load_campaign(Path(__file__).resolve().parents[2] / "campaigns" / "sept2018.yaml")
    hostile = f"{name}\r\nBcc: victim@example.org\n"
    content = RenderedContent(subject=subject + "\r\nBcc: x@example.org", html="<p>x</p>", text="x")
    out = build_message(campaign, _contact(first=hostile), "en", content, "https://u.example.org/")
    msg = message_from_bytes(out.data, policy=policy.default)
    assert msg["Bcc"] is None
    headers = out.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert not any(line.lower().startswith(b"bcc") for line in headers)
    assert msg["To"].addresses[0].addr_spec == "h@example.org"
