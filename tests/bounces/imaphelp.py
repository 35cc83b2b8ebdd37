"""The test's own view of the Dovecot account, through the stdlib's imaplib (not the code under test)."""

from __future__ import annotations

import imaplib
import ssl
from email import message_from_bytes

from ..dovecotserver import PASSWORD, USER, DovecotServer


def _login(server: DovecotServer) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=context)
    client.login(USER, PASSWORD)
    return client


def append(server: DovecotServer, *messages: bytes) -> None:
    """Deliver ``messages`` into INBOX (IMAP APPEND, as a delivery agent would file them)."""
    client = _login(server)
    try:
        for data in messages:
            status, _ = client.append("INBOX", None, None, data)
            assert status == "OK"
    finally:
        client.logout()


def subjects(server: DovecotServer, folder: str) -> list[str]:
    """The Subject of every message in ``folder`` (empty when the folder does not exist)."""
    client = _login(server)
    try:
        status, _ = client.select(f'"{folder}"', readonly=True)
        if status != "OK":
            return []
        _, found = client.uid("SEARCH", "ALL")
        out = []
        for uid in found[0].split():
            _, data = client.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT TO)])")
            raw = data[0][1] if isinstance(data[0], tuple) else b""
            message = message_from_bytes(raw)
            out.append(f"{message['Subject']} -> {message['To']}")
        return sorted(out)
    finally:
        client.logout()


def flags(server: DovecotServer, folder: str) -> dict[str, str]:
    """Subject -> the FLAGS of every message in ``folder``, read with EXAMINE (changing none)."""
    client = _login(server)
    try:
        status, _ = client.select(f'"{folder}"', readonly=True)
        assert status == "OK"
        _, found = client.uid("SEARCH", "ALL")
        out = {}
        for uid in found[0].split():
            _, data = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            head, raw = data[0] if isinstance(data[0], tuple) else (b"", b"")
            subject = str(message_from_bytes(raw)["Subject"])
            out[subject] = head.decode().partition("FLAGS (")[2].partition(")")[0]
        return out
    finally:
        client.logout()
