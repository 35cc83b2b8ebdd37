"""The classifier never raises, whatever bytes a mailbox holds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harkat_mail.bounces import Verdict, classify

from .corpus import ROOT, manifest

SAMPLES = [(ROOT / name).read_bytes() for name in sorted(manifest())]


def _valid(verdict: Verdict) -> bool:
    return verdict.kind in {"bounce", "complaint", "auto-reply", "other"} and all(
        r.bounce_class in {"hard", "soft", "block", "complaint"} for r in verdict.recipients
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_any_bytes_never_raise(data: bytes) -> None:
    """Any bytes in: a verdict out, never an exception."""
    assert _valid(classify(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(max_size=8)), max_size=8),
    st.integers(0, 1 << 20),
)
def test_mutated_corpus_messages_never_raise(
    sample: bytes, edits: list[tuple[int, bytes]], cut: int
) -> None:
    """Real bounces with bytes replaced and cut short still classify without an exception."""
    data = bytearray(sample)
    for at, junk in edits:
        at %= len(data) or 1
        data[at : at + len(junk)] = junk
    assert _valid(classify(bytes(data[: max(1, cut % (len(data) + 1))])))


def test_structural_oddities_never_raise() -> None:
    """Empty, headerless, endless-nesting and undecodable messages all classify."""
    deep = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n" * 200
    odd = [
        b"",
        b"\n\n\n",
        b"\xff\xfe\x00" * 100,
        deep,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: \xff\nAction: \x00\n--x--\n",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x\n"
        b"Content-Type: message/feedback-report\n\n--x--\n",
        b"Subject: =?bogus-charset?q?abc?=\nFrom: <>\n\nx",
    ]
    for data in odd:
        assert _valid(classify(data))
