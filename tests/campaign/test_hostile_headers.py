"""Campaign values that become headers: one mailbox each, an ASCII List-Id, one unsubscribe URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harkat_mail.campaign import load_campaign

from .helpers import edit, line_of, refused, run_cli

MEMBERS = (
    "email,first_name,last_name,language,status,local,consent\n"
    "ana@example.org,Ana,Roy,en,active,12,implied\n"
    "bo@example.org,Bo,Roy,fr,active,12,implied\n"
)
FROM_EN = '  en: "CUPW National Office <national@cupw.example.org>"'
UNSUB_URL = "  url: https://cupw.example.org/unsubscribe"


def _send(project: Path, smtp_server: Any) -> list[Any]:
    (project.parent.parent / "lists" / "members.csv").write_text(MEMBERS, encoding="utf-8")
    server, handler = smtp_server()
    code, out = run_cli("send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes")
    assert code == 0, out
    assert len(handler.messages) == 2
    return handler.messages


def test_from_with_a_smuggled_bcc_is_one_line_through_the_cli(project: Path) -> None:
    """A from whose colon would make it a group (and the From evil@x.example) exits 2, one line."""
    edit(project, FROM_EN, '  en: "CUPW Bcc: evil@x.example <national@cupw.example.org>"')
    code, out = run_cli("validate", str(project))
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out
    line = line_of(project, "CUPW Bcc:")
    assert lines[0].startswith(f"harkat-mail: {project}:{line}: from.en: ")
    assert "is not one address: the ':' makes 'CUPW Bcc' a group name" in lines[0]


def test_unquoted_colon_in_a_name_is_refused_with_the_fix(project: Path) -> None:
    """'CUPW: National Office <...>' is refused (it would lose 'CUPW:'), saying to quote the name."""
    edit(project, FROM_EN, '  en: "CUPW: National Office <national@cupw.example.org>"')
    message = refused(project)
    assert f"sept2018.yaml:{line_of(project, 'CUPW: National')}: from.en: " in message
    assert 'put a name with a colon in double quotes, e.g. "CUPW: National Office"' in message


REPLY_TO = 'reply_to:\n  en: "CUPW Solidarity <solidarity@cupw.example.org>"\n  fr: "STTP Solidarité <solidarite@cupw.example.org>"'  # the sample's, one per language


def test_quoted_names_are_delivered_exactly(project: Path, smtp_server) -> None:
    """Quoted display names arrive in From/Reply-To exactly; one reply_to string serves all."""
    edit(project, FROM_EN, """  en: '"CUPW: National Office" <national@cupw.example.org>'""")
    edit(
        project,
        REPLY_TO,
        r"""reply_to: '"Roy, Ana \"Solidarity\"" <solidarity@cupw.example.org>'""",
    )
    for delivered in _send(project, smtp_server):
        msg = delivered.message
        reply = msg["Reply-To"].addresses
        assert [(a.display_name, a.addr_spec) for a in reply] == [
            ('Roy, Ana "Solidarity"', "solidarity@cupw.example.org")
        ]
        sender = msg["From"].addresses
        if delivered.rcpt_tos == ["ana@example.org"]:
            assert [(a.display_name, a.addr_spec) for a in sender] == [
                ("CUPW: National Office", "national@cupw.example.org")
            ]
        assert len(sender) == 1 and delivered.mail_from == "national@cupw.example.org"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a@x.example.org, b@y.example.org", "expected exactly one address, found 2"),
        ("Roy, Ana <ana@x.example.org>", "expected exactly one address, found 2"),
        ("CUPW (National) <n@cupw.example.org>", "has text that would be dropped"),
        ("x <@evil.example:n@cupw.example.org>", "obsolete route specification"),
        ("=?utf-8?q?Bcc=3A?= <n@cupw.example.org>", "not an encoded word"),
        ("CUPW <n@cupw.example.org", "missing trailing '>'"),
        ("CUPW National Office", "local part with no domain"),
        ('CUPW <"two words"@cupw.example.org>', "must be plain (no quotes or spaces)"),
        ("CUPW <n@localhost>", "expected a domain such as cupw.example.org after the '@'"),
        ("CUPW <n@cupw.test>", "no mail can be sent from a .test domain"),
        ("CUPW <n@xn--zz.example.org>", "the part after '@' is not a valid domain"),
        ("CUPW <n@[192.0.2.1]>", "give a domain name after the '@', not an IP address"),
        ("N" * 201 + " <n@cupw.example.org>", "the name is longer than 200 characters"),
        ("x" * 600, "longer than 512 characters"),
    ],
)
def test_a_from_that_is_not_one_plain_mailbox_isrefused(
    project: Path, value: str, message: str
) -> None:
    """Two addresses, comments, routes, encoded words and broken brackets are refused by line."""
    edit(project, FROM_EN, f"  en: '{value}'")
    text = refused(project)
    assert f"sept2018.yaml:{line_of(project, value[:20])}: from.en: " in text
    assert message in text


def test_non_ascii_local_part_isrefused(project: Path) -> None:
    """An accented letter before the @ is refused (SMTPUTF8 is not used), naming the line."""
    edit(project, FROM_EN, '  en: "CUPW <bureau-général@cupw.example.org>"')
    message = refused(project)
    assert f":{line_of(project, 'général')}: from.en: " in message
    assert "the part before '@' is not ASCII" in message


def test_non_ascii_domain_is_sent_in_its_idna_form(project: Path, smtp_server) -> None:
    """An accented domain goes out as xn-- (envelope, From, List-Id, Message-ID); the name as written."""
    edit(project, FROM_EN, """  en: '"Élodie Roy, STTP: Québec" <national@syndicat-é.example>'""")
    edit(project, '  fr: "STTP Bureau national <national@cupw.example.org>"', "")
    for delivered in _send(project, smtp_server):
        msg = delivered.message
        assert delivered.mail_from == "national@xn--syndicat--j4a.example"
        address = msg["From"].addresses[0]
        assert (address.display_name, address.addr_spec) == (
            "Élodie Roy, STTP: Québec",
            "national@xn--syndicat--j4a.example",
        )
        assert msg["List-Id"] == "<sept2018.xn--syndicat--j4a.example>"
        assert msg["Message-ID"].endswith("@xn--syndicat--j4a.example>")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"Unsubscribe <unsubscribe@cupw.example.org>"', "write only the address, without a name"),
        ('"un?sub@cupw.example.org"', "use letters, digits and . _ + = - before the '@'"),
        ('"a@cupw.example.org, b@evil.example"', "expected exactly one address, found 2"),
    ],
)
def test_unsubscribe_mailto_is_one_bare_address(project: Path, value: str, message: str) -> None:
    """unsubscribe.mailto must be one plain address: it is written into <mailto:...>."""
    edit(project, "  mailto: unsubscribe@cupw.example.org", f"  mailto: {value}")
    text = refused(project)
    assert f":{line_of(project, 'mailto:')}: unsubscribe.mailto: " in text and message in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sept2018.syndicat-é.example", "is not ASCII (RFC 2919)"),
        ('"x>, <y.example"', "expected an id such as sept2018.cupw.example.org"),
        ("nodot", "expected an id such as sept2018.cupw.example.org"),
        ('"a b.example"', "expected an id such as sept2018.cupw.example.org"),
    ],
)
def test_list_id_must_be_ascii_and_dotted(project: Path, value: str, message: str) -> None:
    """A non-ASCII, spaced, bracketed or undotted list_id is refused naming its line."""
    edit(project, "smtp: local", f"smtp: local\nlist_id: {value}")
    text = refused(project)
    assert f":{line_of(project, 'list_id:')}: list_id: " in text and message in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"https://a.example/u>, <https://evil.example/x"', "'>' is not allowed"),
        ('"https://a.example/u,https://evil.example/x"', "',' is not allowed"),
        ('"https://a.example/u x"', "' ' is not allowed"),
        ('https://a.example/u"x', "'\"' is not allowed"),
        ('"https://a.example/u\'x"', '"\'" is not allowed'),
        ('"https://a.example/u#top"', "'#' is not allowed"),
        ("https://désabonner.example/u", "'é' is not allowed"),
        ("https://a.example/u%zz", "a '%' must start a %XX escape"),
        ("http://a.example/u", "expected an https:// address"),
        ("https:///u", "expected a host name after https://"),
        ("https://cupw.example.org@evil.example/u", "no user name or password"),
        ("https://a.example:99999/u", "not a valid address"),
    ],
)
def test_unsubscribe_url_is_one_https_uri(project: Path, value: str, message: str) -> None:
    """An unsubscribe URL that could add a second List-Unsubscribe entry, or is not https, is refused."""
    edit(project, UNSUB_URL, f"  url: {value}")
    assert f":{line_of(project, '  url:')}: unsubscribe.url: {message}" in refused(project)


def test_unsubscribe_url_with_port_and_query_is_delivered_as_one_entry(
    project: Path, smtp_server
) -> None:
    """A legitimate URL with a port and a query gives one https entry, then the mailto."""
    edit(project, UNSUB_URL, "  url: https://cupw.example.org:8443/u?list=appeal&lang=en")
    for delivered in _send(project, smtp_server):
        value = delivered.message["List-Unsubscribe"]
        https, mailto = value.split(", ")
        assert https.startswith("<https://cupw.example.org:8443/u?list=appeal&lang=en&t=")
        assert mailto == "<mailto:unsubscribe@cupw.example.org?subject=unsubscribe>"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("selector", '"s; d=evil.example"', "expected a selector of ASCII letters"),
        ("domain", "syndicat-é.example", "expected a domain of ASCII letters"),
    ],
)
def test_dkim_names_are_ascii_dns_names(
    project: Path, tmp_path: Path, key: str, value: str, message: str
) -> None:
    """A DKIM selector or domain that could add a tag, or is not ASCII, is refused by line."""
    key_path = tmp_path / "dkim.pem"
    key_path.write_text("not read at load time\n")
    names = {"domain": "cupw.example.org", "selector": "harkat2018", key: value}
    edit(
        project,
        "smtp: local",
        f"smtp: local\ndkim:\n  domain: {names['domain']}\n  selector: {names['selector']}\n"
        f"  key_path: {key_path}",
    )
    assert f":{line_of(project, f'  {key}:')}: dkim.{key}: {message}" in refused(project)


def test_sample_addresses_are_kept_as_written(project: Path) -> None:
    """The sample's plain "Name <address>" values load unchanged."""
    campaign = load_campaign(project)
    assert dict(campaign.sender) == {
        "en": "CUPW National Office <national@cupw.example.org>",
        "fr": "STTP Bureau national <national@cupw.example.org>",
    }
    assert dict(campaign.reply_to) == {
        "en": "CUPW Solidarity <solidarity@cupw.example.org>",
        "fr": "STTP Solidarité <solidarite@cupw.example.org>",
    }
    assert campaign.unsubscribe.mailto == "unsubscribe@cupw.example.org"
