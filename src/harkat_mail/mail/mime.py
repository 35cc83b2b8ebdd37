"""Fast MIME assembly: the fixed parts of a variant's message built once, bytes per recipient.

A stdlib ``EmailMessage`` per recipient costs milliseconds (header objects, folding, the
generator). Here the headers shared by every recipient of a variant are encoded once, and per
recipient only To, Subject, Date, Message-ID and List-Unsubscribe are encoded and the two
bodies quoted-printable encoded (binascii, in C). Member values in To and Subject are cleaned,
capped and folded here, on the path messages are sent on: no header line reaches the 998-octet
limit whatever a list or a merge value holds. ``message.build_message`` is the slow reference;
tests prove both parse into the same headers and parts.
"""

from __future__ import annotations

import binascii
import secrets
import time
from email.charset import Charset
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from ..models import Campaign, Contact, OutgoingMessage, RenderedContent
from .dkimsign import DkimSigner
from .message import (
    MAX_NAME,
    MAX_SUBJECT,
    envelope_sender,
    header_text,
    list_unsubscribe,
    message_id,
)

CRLF = "\r\n"
LINE = 78  # RFC 5322 2.1.1: lines SHOULD stay within 78 characters (and MUST within 998)
_UTF8 = Charset("utf-8")  # header_encode: one encoded word, Q or B, whichever is shorter


def _fold(text: str, used: int) -> str:
    """``text`` with a line break before each space that would carry a line past 78 characters.

    For text whose spaces are single (``header_safe`` made them so) in an unstructured value or
    an address phrase, where unfolding restores exactly the text. A word longer than a line
    stays whole; the length caps keep such a line far below 998 octets.
    """
    out: list[str] = []
    width = used
    for word in text.split(" "):
        if not out:
            out.append(word)
            width += len(word)
        elif width + 1 + len(word) > LINE:
            out.append(f"{CRLF} {word}")
            width = 1 + len(word)
        else:
            out.append(f" {word}")
            width += 1 + len(word)
    return "".join(out)


def encode_header_value(value: str, name: str = "Subject", limit: int = MAX_SUBJECT) -> str:
    """An unstructured header value, cleaned, capped at ``limit`` characters and folded.

    ASCII stays readable, folded at its spaces. Anything else becomes RFC 2047 encoded words
    folded at 76; so does a value that itself looks like an encoded word (``=?utf-8?q?...?=``,
    e.g. a member's "name" carrying an encoded line break), so readers show it literally.
    """
    value = header_text(value, limit, keep_no_break=True)
    if value.isascii() and "=?" not in value:
        folded = _fold(value, len(name) + 2)
        if all(len(line) <= LINE for line in folded.split(CRLF)):
            return folded
    return Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep=CRLF)


def encode_address(display: str, addr: str, name: str = "To") -> str:
    """``Name <addr>``: the name cleaned, capped at ``MAX_NAME``, quoted or encoded as needed.

    An ASCII name is quoted when needed and folded at its spaces. Any other name, or one that
    looks like an encoded word (see ``encode_header_value``), is one encoded word.
    """
    display = header_text(display, MAX_NAME)
    if not display:
        return addr
    if display.isascii() and "=?" not in display:
        plain = formataddr((display, addr))
        return plain if len(name) + 2 + len(plain) <= LINE else _fold(plain, len(name) + 2)
    # One word even past RFC 2047's 75 characters, as the stdlib writes it (MAX_NAME keeps it
    # under 998 octets): between two encoded words in a phrase, RFC 2047 readers drop the space
    # and CPython's parser (3.11 at least, gh-128110) shows one, so a name split in two would
    # read differently in each.
    word = _UTF8.header_encode(display)
    if len(name) + len(word) + len(addr) + 5 <= LINE:
        return f"{word} <{addr}>"
    return f"{word}{CRLF} <{addr}>"


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
        self.envelope = envelope_sender(campaign, self.sender)
        self.boundary = f"=_harkat_{secrets.token_hex(12)}"
        fixed = [f"From: {encode_address(sender_name, self.sender, 'From')}"]
        if reply_to := campaign.reply_to_for(language):
            reply_name, reply_addr = parseaddr(reply_to)
            fixed.append(f"Reply-To: {encode_address(reply_name, reply_addr, 'Reply-To')}")
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
        return OutgoingMessage(
            contact.key, self.envelope(contact.key), contact.email, msg_id, data
        )
