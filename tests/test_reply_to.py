"""reply_to per language, as members receive it over real SMTP."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harkat_mail.cli import main

from .campaign.helpers import edit


def _send(project: Path, port: int) -> None:
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes"]
    )
    assert result.exit_code == 0, result.output


def test_each_language_gets_its_own_reply_to(project: Path, smtp_server) -> None:
    """The sample's en and fr reply_to addresses reach English and French members respectively."""
    server, handler = smtp_server()
    _send(project, server.port)
    seen: dict[str, set[tuple[str, str]]] = {}
    for delivered in handler.messages:
        msg = delivered.message
        reply = msg["Reply-To"].addresses
        seen.setdefault(str(msg["Content-Language"]), set()).update(
            (a.display_name, a.addr_spec) for a in reply
        )
    assert seen == {
        "en": {("CUPW Solidarity", "solidarity@cupw.example.org")},
        "fr": {("STTP Solidarité", "solidarite@cupw.example.org")},
    }


def test_a_language_left_out_falls_back_to_the_default(project: Path, smtp_server) -> None:
    """reply_to with only en: French members get the English (default language) address."""
    edit(project, '  fr: "STTP Solidarité <solidarite@cupw.example.org>"\n', "")
    server, handler = smtp_server()
    _send(project, server.port)
    addresses = {m.message["Reply-To"].addresses[0].addr_spec for m in handler.messages}
    languages = {str(m.message["Content-Language"]) for m in handler.messages}
    assert addresses == {"solidarity@cupw.example.org"} and languages == {"en", "fr"}
