"""Test sends: one ``[TEST]`` message per language to staff, harmless to every member.

A test message is rendered with a member's data (the first of each language, or the one
``--as`` names) but carries a test unsubscribe link naming the tester, which the unsubscribe
server answers with "this was a test" and records nothing. Through the capture relay test
messages are filed in ``<outbox>-tests/``, apart from the real ones; the send log is not
touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from ..delivery import DeliveryHooks, deliver
from ..errors import ConfigError
from ..models import Contact, DeliveryResult, OutgoingMessage, SmtpConfig
from .prepare import Prepared
from .send import relay_for


def tests_outbox(outbox: Path) -> Path:
    """Where the capture relay files test messages: ``outbox/<campaign>-tests/``."""
    return outbox.with_name(f"{outbox.name}-tests")


def find_member(prepared: Prepared, member: str, option: str = "--as") -> Contact:
    """The member ``option`` names: a member id, an address, or a row number of the list."""
    wanted = member.strip()
    contacts = prepared.contacts.contacts
    for match in (
        lambda c: c.member_id != "" and c.member_id.lower() == wanted.lower(),
        lambda c: c.key == wanted.lower() or c.email.lower() == wanted.lower(),
        lambda c: wanted.removeprefix("row").strip() == str(c.row),
    ):
        found = next((c for c in contacts if match(c)), None)
        if found is not None:
            return found
    for rejected in prepared.contacts.rejected:
        names = (rejected.email.strip().lower(), rejected.member_id.lower(), str(rejected.row))
        if wanted.lower() in names:
            raise ConfigError(
                f"{option} {member}: {rejected.source} row {rejected.row} is not sent to "
                f"({rejected.reason}); pick a member who gets the message"
            )
    sources = ", ".join(s.name for s in prepared.contacts.sources) or "the list"
    raise ConfigError(
        f"{option} {member}: no member of {sources} has this member id, address or row number"
    )


def whose(contact: Contact) -> str:
    """``Élise Côté, row 4``: whose data a test message shows, for its subject."""
    name = contact.display_name or contact.member_id or contact.email
    return f"{name}, row {contact.row}"


def test_messages(
    prepared: Prepared, addresses: Sequence[str], member: str | None = None
) -> list[OutgoingMessage]:
    """The test messages: one per language per address, each with a test unsubscribe link."""
    from ..lists import check_address  # here: render workers import this package, not pandas

    renderer = prepared.renderer
    chosen = find_member(prepared, member) if member else None
    shown: dict[str, Contact] = {}
    for language in renderer.languages:
        if chosen is not None:  # the chosen member's data through every language's variant
            shown[language] = replace(chosen, language=language)
    for contact in prepared.contacts.contacts:
        shown.setdefault(renderer.language_for(contact), contact)
    messages: list[OutgoingMessage] = []
    for address in addresses:
        email, reason = check_address(address)
        if email is None:
            raise ConfigError(f"--test-to {address}: {reason}")
        for language, contact in sorted(shown.items()):
            link = renderer.unsubscribe.test_url(email.lower(), language)
            content = renderer.render(contact, unsubscribe_url=link)
            content = replace(content, subject=f"[TEST as {whose(contact)}] {content.subject}")
            staff = replace(
                contact,
                key=f"test:{language}:{email.lower()}",
                email=email,
                first_name="",
                last_name="",
            )
            messages.append(prepared.builders[language].build(staff, content, link))
    return messages


def send_tests(
    prepared: Prepared,
    addresses: Sequence[str],
    smtp: SmtpConfig,
    member: str | None = None,
) -> list[DeliveryResult]:
    """Send the test messages (``member``: whose data, else the first of each language).

    The send log is not touched; the capture relay files them in ``<outbox>-tests/``.
    """
    messages = test_messages(prepared, addresses, member)
    results: list[DeliveryResult] = []

    async def stream() -> AsyncIterator[OutgoingMessage]:
        for message in messages:
            yield message

    async def no_log(_: OutgoingMessage) -> None:
        return None

    hooks = DeliveryHooks(no_log, lambda result, _: results.append(result))
    outbox = tests_outbox(prepared.campaign.outbox)
    with relay_for(prepared, smtp, outbox) as relay:
        retry = replace(prepared.campaign.retry, attempts=1)
        asyncio.run(deliver(relay, retry, stream(), hooks))
    return results
