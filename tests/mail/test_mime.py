"""The fast MIME path parses into the same headers and parts as the stdlib EmailMessage path."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harkat_mail.campaign import load_campaign
from harkat_mail.mail.message import build_message
from harkat_mail.mail.mime import VariantMessages
from harkat_mail.models import Contact, RenderedContent
from harkat_mail.run import prepare

CAMPAIGN = load_campaign(Path(__file__).resolve().parents[2] / "campaigns" / "sept2018.yaml")
COMPARED = [
    "From",
    "To",
    "Subject",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Content-Language",
    "MIME-Version",
]


def _parse(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _same(fast: bytes, slow: bytes) -> None:
    a, b = _parse(fast), _parse(slow)
    for name in COMPARED:
        assert str(a[name]) == str(b[name]), name
    assert a.get_content_type() == b.get_content_type() == "multipart/alternative"
    parts_a, parts_b = list(a.iter_parts()), list(b.iter_parts())
    assert [p.get_content_type() for p in parts_a] == [p.get_content_type() for p in parts_b]
    for pa, pb in zip(parts_a, parts_b, strict=True):
        assert pa.get_content().replace("\r\n", "\n") == pb.get_content().replace("\r\n", "\n")
    assert a.defects == [] and all(p.defects == [] for p in parts_a)


def _contact(first: str, last: str = "Roy", email: str = "ana@example.org") -> Contact:
    return Contact(
        key=email.lower(),
        email=email,
        row=1,
        source="m.csv",
        language="fr",
        first_name=first,
        last_name=last,
    )


def test_sample_messages_match_the_stdlib_path() -> None:
    """Every recipient of the sample: fast bytes and EmailMessage bytes parse alike."""
    prepared = prepare(CAMPAIGN)
    for contact in prepared.contacts.contacts:
        language = prepared.renderer.language_for(contact)
        content = prepared.renderer.render(contact)
        fast = prepared.compose(contact)
        url = str(_parse(fast.data)["List-Unsubscribe"]).split(">")[0][1:]
        slow = build_message(CAMPAIGN, contact, language, content, url, datetime.now(UTC))
        _same(fast.data, slow.data)
        assert fast.message_id == slow.message_id and fast.recipient == slow.recipient


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
bodies = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=150, deadline=None)
@given(first=names, last=names, subject=names, text=bodies, html=bodies)
def test_any_content_matches_the_stdlib_path(
    first: str, last: str, subject: str, text: str, html: str
) -> None:
    """Whatever names, subject and bodies, the fast path parses like the stdlib path."""
    contact = _contact(first, last)
    content = RenderedContent(subject=subject, html="<p>" + html + "\n.dot line\n", text=text)
    fast = VariantMessages(CAMPAIGN, "fr").build(contact, content, "https://u.example.org/x")
    slow = build_message(CAMPAIGN, contact, "fr", content, "https://u.example.org/x")
    a, b = _parse(fast.data), _parse(slow.data)
    assert str(a["To"]) == str(b["To"]) and str(a["Subject"]) == str(b["Subject"])
    for pa, pb in zip(a.iter_parts(), b.iter_parts(), strict=True):
        norm = lambda s: s.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")  # noqa: E731
        assert norm(pa.get_content()) == norm(pb.get_content())
    assert a["Bcc"] is None and all(len(line) <= 998 for line in fast.data.split(b"\r\n"))
