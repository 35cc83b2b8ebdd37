"""Unsubscribe tokens: opaque, stable, unforgeable, and the links already sent keep working."""

from __future__ import annotations

import base64
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harkat_mail.mail.tokens import LOCAL_SECRET, BadToken, Signer, Subscription

from .tokenhelpers import base64_forms, v1_token

SECRET = b"k" * 32
SIGNER = Signer(SECRET)
ANA = ("news.example.org", "ana@example.org", "fr")
JEAN = ("sept2018.cupw.example.org", "Jean.Côté+news@example.org", "en")
# Made by the previous release with SECRET: such links are in members' inboxes.
V1_ANA = "bmV3cy5leGFtcGxlLm9yZx9hbmFAZXhhbXBsZS5vcmcfZnI.g1fFKKwOu1N2PaQgGUXElw"
V1_JEAN = (
    "c2VwdDIwMTguY3Vwdy5leGFtcGxlLm9yZx9KZWFuLkPDtHTDqStuZXdzQGV4YW1wbGUub3JnH2Vu"
    ".1CfBhn1nlk4WwrSM7mcyWw"
)
# Made by this release with SECRET: the format is frozen once links are sent.
V2_ANA = "2DItX-aCQUE1y-Dcabty2l2VfeDKHYwgObjab8d1PC-E7bwqBoIzbHWt04aia9cfdDwy7"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

lists = st.from_regex(r"[a-z0-9-]{3,15}(\.[a-z0-9-]{2,10}){1,3}", fullmatch=True)
addresses = st.from_regex(r"[a-zA-Z0-9._+-]{3,30}@[a-z0-9-]{2,20}\.(org|ca|com)", fullmatch=True)
languages = st.sampled_from(["en", "fr", "es", "pt-BR"])
fields = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x1f"))


@settings(max_examples=200)
@given(list_id=lists, address=addresses, language=languages)
def test_a_new_token_shows_neither_the_address_nor_the_list(
    list_id: str, address: str, language: str
) -> None:
    """A new token is '2' + unpadded base64url, with no address or list id, plain or base64."""
    token = SIGNER.token(list_id, address, language)
    assert re.fullmatch(r"2[A-Za-z0-9_-]+", token)
    pieces = (address, list_id, address.split("@")[0], address.split("@")[1])
    # Pieces under 6 characters can turn up in 40+ random characters by chance alone.
    for secret in (piece for piece in pieces if len(piece) >= 6):
        assert secret.lower() not in token.lower()
        assert not any(form in token for form in base64_forms(secret))
    # The check would catch a leak: the previous format spells the address in base64.
    old = v1_token(SECRET, list_id, address, language)
    assert any(form in old for form in base64_forms(address))


@pytest.mark.parametrize("token", [SIGNER.token(*ANA), SIGNER.token(*JEAN), V1_ANA])
def test_every_altered_character_or_byte_is_refused(token: str) -> None:
    """Any changed, dropped or added character, or any flipped ciphertext bit: BadToken."""
    assert SIGNER.verify(token)  # the unaltered token is good
    altered = {token[:i] for i in range(len(token))} | {token + c for c in "A2.=_"}
    for i, old in enumerate(token):
        altered |= {token[:i] + c + token[i + 1 :] for c in ALPHABET + ".=+/%é" if c != old}
    if token.startswith("2"):
        data = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4))
        for i in range(len(data)):
            for bit in range(8):
                flipped = data[:i] + bytes([data[i] ^ 1 << bit]) + data[i + 1 :]
                altered.add("2" + base64.urlsafe_b64encode(flipped).rstrip(b"=").decode())
    for bad in altered:
        with pytest.raises(BadToken):
            SIGNER.verify(bad)


@pytest.mark.parametrize("other", [b"j" * 32, SECRET + b"x", LOCAL_SECRET])
def test_a_token_made_with_another_secret_is_refused(other: bytes) -> None:
    """New and previous-release tokens made with any other secret (even the local one): BadToken."""
    for token in (Signer(other).token(*ANA), v1_token(other, *ANA)):
        with pytest.raises(BadToken):
            SIGNER.verify(token)


def test_links_the_previous_release_sent_still_verify() -> None:
    """Tokens the previous release put in inboxes name the same list, address and language."""
    assert SIGNER.verify(V1_ANA) == Subscription(*ANA)
    assert SIGNER.verify(V1_JEAN) == Subscription(*JEAN)
    assert SIGNER.verify(f"  {V1_ANA}\n") == Subscription(*ANA)  # pasted with white space


@settings(max_examples=200)
@given(list_id=fields, address=fields, language=fields)
def test_any_values_round_trip_in_both_formats(list_id: str, address: str, language: str) -> None:
    """Whatever the values, a new token and a previous-release token verify to exactly them."""
    named = Subscription(list_id, address, language)
    token = SIGNER.token(list_id, address, language)
    assert SIGNER.verify(token) == named
    assert SIGNER.verify(v1_token(SECRET, list_id, address, language)) == named
    plain = len("\x1f".join((list_id, address, language)).encode("utf-8"))
    assert len(token) == 1 + math.ceil((plain + 16) * 4 / 3)  # '2', then data and 16-byte tag


def test_tokens_are_stable_and_one_per_member_list_and_language() -> None:
    """Same input, same token, across signers and releases; any other input, another token."""
    assert SIGNER.token(*ANA) == Signer(SECRET).token(*ANA) == V2_ANA
    others = [
        SIGNER.token("news2.example.org", "ana@example.org", "fr"),
        SIGNER.token("news.example.org", "ana2@example.org", "fr"),
        SIGNER.token("news.example.org", "ana@example.org", "en"),
        Signer(b"j" * 32).token(*ANA),
    ]
    assert len({V2_ANA, *others}) == 5


@settings(max_examples=300)
@given(
    junk=st.text(max_size=120)
    | st.from_regex(r"2[A-Za-z0-9_-]{0,120}", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9_-]{1,80}\.[A-Za-z0-9_-]{1,30}", fullmatch=True)
)
def test_made_up_tokens_are_refused(junk: str) -> None:
    """Random text, random base64url after a '2', random payload.mac: always BadToken."""
    with pytest.raises(BadToken):
        SIGNER.verify(junk)


def test_oversized_tokens_are_refused_before_any_work() -> None:
    """A token longer than 2,048 characters is refused as malformed."""
    with pytest.raises(BadToken, match="malformed"):
        SIGNER.verify("2" + "A" * 3000)


def test_a_value_holding_the_separator_cannot_make_a_token() -> None:
    """A field containing U+001F would make a link that never verifies: refused when minting."""
    with pytest.raises(ValueError):
        SIGNER.token("news.example.org", "ana@example.org\x1fen", "fr")


def test_the_signer_never_shows_its_key() -> None:
    """repr, str and f-strings of a Signer (and of a structure holding one) hide the secret."""
    secret = b"s3cr3t-unsubscribe-key-0123456789"
    signer = Signer(secret)
    for shown in (repr(signer), str(signer), f"{signer}", repr({"signer": [signer]})):
        assert "s3cr3t" not in shown and secret.hex() not in shown
        assert "key hidden" in shown


@settings(max_examples=100)
@given(list_id=fields, address=fields, language=fields)
def test_test_tokens_round_trip_and_say_so(list_id: str, address: str, language: str) -> None:
    """A test message's token names its values and says it is a test; member tokens never do."""
    test = SIGNER.test_token(list_id, address, language)
    assert SIGNER.verify(test) == Subscription(list_id, address, language, test=True)
    assert not SIGNER.verify(SIGNER.token(list_id, address, language)).test
    assert not SIGNER.verify(v1_token(SECRET, list_id, address, language)).test
    with pytest.raises(BadToken):
        SIGNER.verify("2" + test[1:])
