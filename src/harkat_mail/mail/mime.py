"""Fast MIME assembly: the fixed parts of a variant's message built once, bytes per recipient.

A stdlib ``EmailMessage`` per recipient costs milliseconds (header objects, folding, the
generator). Here the headers shared by every recipient of a variant are encoded once, and per
recipient only To, Subject, Date, Message-ID and List-Unsubscribe are encoded and the two
bodies quoted-printable encoded (binascii, in C). ``message.build_message`` is the slow
reference; tests prove both parse into the same headers and parts.
"""

from __future__ import annotations

import binascii
import secrets
import time
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from ..models import Campaign, Contact, OutgoingMessage, RenderedContent
from .dkimsign import DkimSigner
from .message import header_safe, list_unsubscribe, message_id

CRLF = "\r\n"


def _encoded_words(value: str) -> str:
    return Header(value, "utf-8", maxlinelen=76).encode(linesep=CRLF)


def encode_header_value(value: str) -> str:
    """An unstructured header value: ASCII as is, otherwise RFC 2047 encoded words.

    A value that itself looks like an encoded word (``=?utf-8?q?...?=``, e.g. a member's
    "name" carrying an encoded line break) is encoded again, so readers show it literally.
    """
    value = header_safe(value)
    if value.isascii() and len(value) < 900 and "=?" not in value:
        return value
    return _encoded_words(value)


def encode_address(display: str, addr: str) -> str:
    """``Name <addr>`` with the name quoted or RFC 2047 encoded as needed."""
    display = header_safe(display)
    if "=?" in display:  # see encode_header_value: never a decodable encoded word
        return f"{_encoded_words(display)} <{addr}>"
    return formataddr((display, addr), charset="utf-8").replace("\n", CRLF + " ")


def _qp(text: str) -> bytes:
    # CRLF line ends in, CRLF soft breaks out; '.' at a line start is dot-stuffed by the client.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):  # as the stdlib does: a part's text ends with a line end
        text += "\n"
    data = text.replace("\n", "\r\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


class VariantMessages:
    """Builds the wire bytes of one variant's messages (one language of one campaign)."""

    def __init__(
        self,
        campaign: Campaign,
        language: str,
        content_language: str = "",
        signer: DkimSigner | None = None,
    ) -> None:
        self.campaign = campaign
        self.signer = signer
        sender_name, self.sender = parseaddr(campaign.sender_for(language))
        self.boundary = f"=_harkat_{secrets.token_hex(12)}"
        fixed = [f"From: {encode_address(sender_name, self.sender)}"]
        if campaign.reply_to:
            reply_name, reply_addr = parseaddr(campaign.reply_to)
            fixed.append(f"Reply-To: {encode_address(reply_name, reply_addr)}")
        fixed.append(f"List-Id: <{campaign.list_id}>")
        self.fixed = CRLF.join(fixed)
        self.tail = CRLF.join(
            [
                f"Content-Language: {content_language or language}",
                "MIME-Version: 1.0",
                f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
            ]
        )
        part = (
            'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable'
        )
        self.text_head = f"--{self.boundary}{CRLF}{part.format('plain')}{CRLF}{CRLF}".encode()
        self.html_head = f"{CRLF}--{self.boundary}{CRLF}{part.format('html')}{CRLF}{CRLF}".encode()
        self.end = f"{CRLF}--{self.boundary}--{CRLF}".encode()
        self._subjects: dict[str, str] = {}
        self._date = (0, "")

    def _subject(self, subject: str) -> str:
        encoded = self._subjects.get(subject)
        if encoded is None:
            if len(self._subjects) > 64:  # personalised subjects: do not grow without bound
                self._subjects.clear()
            encoded = self._subjects[subject] = encode_header_value(subject)
        return encoded

    def _now(self) -> str:
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]

    def build(
        self, contact: Contact, content: RenderedContent, unsubscribe: str
    ) -> OutgoingMessage:
        """The message for one recipient, as the bytes to send."""
        msg_id = message_id(self.campaign, contact.key)
        headers = [
            self.fixed,
            f"To: {encode_address(contact.display_name, contact.email)}",
            f"Subject: {self._subject(content.subject)}",
            f"Date: {self._now()}",
            f"Message-ID: {msg_id}",
        ]
        unsub = list_unsubscribe(self.campaign, unsubscribe)
        if unsub:
            headers.append(f"List-Unsubscribe: {unsub}")
            if unsub.startswith("<https://"):
                headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        headers.append(self.tail)
        data = b"".join(
            (
                CRLF.join(headers).encode("ascii"),
                b"\r\n\r\n",
                self.text_head,
                _qp(content.text),
                self.html_head,
                _qp(content.html),
                self.end,
            )
        )
        if self.signer is not None:
            data = self.signer.sign(data)
        return OutgoingMessage(contact.key, self.sender, contact.email, msg_id, data)
