"""CASL consent and identification, DKIM, and hostile member rows, through real SMTP."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.lists.consent import consent_basis
from harkat_mail.mail.dkimsign import generate_key

HEADER = "email,first_name,last_name,language,status,local,consent\n"
TODAY = dt.date(2026, 11, 27)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _send(project: Path, port: int) -> tuple[int, str]:
    return _run("send", str(project), "--smtp", f"smtp://127.0.0.1:{port}", "--yes")


def _members(project: Path, rows: str) -> None:
    (project.parent.parent / "lists" / "members.csv").write_text(HEADER + rows, encoding="utf-8")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "basis"),
    [
        ("implied", "implied: current member"),
        ("  Implicite ", "implied: current member"),
        ("express 2017-03-14", "express 2017-03-14"),
        ("Exprès: 2017/03/14", "express 2017-03-14"),
        ("implied 2025-06-30", "implied: membership ended 2025-06-30, valid until 2027-06-30"),
        ("implied 2024-11-27", "implied: membership ended 2024-11-27, valid until 2026-11-27"),
    ],
)
def test_consent_bases_that_allow_a_commercial_message(value: str, basis: str) -> None:
    """Current members, dated express consent, and implied consent within two years qualify."""
    assert consent_basis(value, TODAY) == (basis, "")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "none recorded"),
        ("implied 2024-11-26", "expired 2026-11-26"),
        ("express", "needs the date"),
        ("express 2027-01-01", "in the future"),
        ("withdrawn", "withdrawn"),
        ("yes please", "cannot read 'yes please'"),
        ("express 14/03/2017", "cannot read"),
    ],
)
def test_consent_bases_that_exclude_a_member(value: str, why: str) -> None:
    """No basis, an expired or future one, a withdrawal or an unreadable cell excludes, saying why."""
    basis, reason = consent_basis(value, TODAY)
    assert basis is None and reason.startswith("no consent: ") and why in reason


def test_commercial_campaign_sends_only_with_consent_and_logs_the_basis(
    project: Path, smtp_server
) -> None:
    """Members without a valid basis get nothing, are skipped with the reason; the basis is logged."""
    ended = (dt.date.today() - dt.timedelta(days=400)).isoformat()
    _members(
        project,
        "a@example.org,Ana,Roy,en,active,12,implied\n"
        f"b@example.org,Bo,Roy,en,active,12,implied {ended}\n"
        "c@example.org,Cy,Roy,fr,active,12,express 2015-02-01\n"
        "d@example.org,Di,Roy,en,active,12,implied 2019-01-31\n"
        "e@example.org,Ed,Roy,en,active,12,\n"
        "f@example.org,Flo,Roy,fr,active,12,withdrawn\n",
    )
    server, handler = smtp_server()
    code, out = _send(project, server.port)
    assert code == 0, out
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == [
        "a@example.org",
        "b@example.org",
        "c@example.org",
    ]
    assert "3 no consent" in out
    code, report = _run("report", str(project))
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(report))}
    assert rows["a@example.org"]["consent"] == "implied: current member"
    assert rows["b@example.org"]["consent"].startswith(f"implied: membership ended {ended}")
    assert rows["c@example.org"]["consent"] == "express 2015-02-01"
    assert rows["d@example.org"]["state"] == "skipped"
    assert rows["d@example.org"]["reason"].startswith("no consent: implied consent expired")
    assert rows["e@example.org"]["reason"] == "no consent: none recorded"
    assert rows["f@example.org"]["reason"] == "no consent: withdrawn"


def test_commercial_list_without_a_consent_column_is_refused(project: Path) -> None:
    """A commercial campaign's list must have consent; the error names the file and the headers."""
    members = project.parent.parent / "lists" / "members.csv"
    members.write_text("email,first_name,language,status\na@example.org,A,en,active\n")
    code, out = _run("validate", str(project))
    assert code != 0 and "members.csv: a commercial campaign needs a consent column" in out
    assert "found: email, first_name, language, status" in out


def test_informational_campaign_ignores_consent(project: Path) -> None:
    """An informational message goes to members whatever their consent column says."""
    _edit(project, "purpose: commercial", "purpose: informational")
    _members(project, "a@example.org,Ana,Roy,en,active,12,\nb@example.org,Bo,Roy,en,active,12,no\n")
    code, out = _run("validate", str(project))
    assert code == 0 and "2 to send" in out


def test_campaign_must_declare_its_purpose(project: Path) -> None:
    """Without purpose the campaign is refused, naming the key and the two choices."""
    _edit(project, "purpose: commercial\n", "")
    code, out = _run("validate", str(project))
    assert code != 0 and "purpose: missing" in out and "purpose: informational` or `purpose: commercial" in out


@pytest.mark.parametrize(
    ("old", "new", "missing"),
    [
        ("{{ identification.mailing_address }}", "", "the mailing address"),
        (
            '<a href="{{ unsubscribe_url }}">Se désabonner des appels du syndicat</a>',
            "Écrivez-nous pour vous désabonner",
            "a working unsubscribe link",
        ),
        (
            '<a href="{{ unsubscribe_url }}">',
            '<a href="https://cupw.example.org/unsubscribe">',
            "a working unsubscribe link",
        ),
    ],
)
def test_a_variant_without_identification_fails_commercial_and_warns_informational(
    project: Path, old: str, new: str, missing: str
) -> None:
    """validate and --dry-run refuse a commercial campaign whose fr variant lacks one element."""
    template = project.parent.parent / "templates" / "harkat-appeal" / "fr.html"
    _edit(template, old, new)
    for command in (["validate", str(project)], ["send", str(project), "--dry-run"]):
        code, out = _run(*command)
        assert code != 0, out
        assert "fr.html: the message lacks" in out and missing in out and "en.html" not in out
    _edit(project, "purpose: commercial", "purpose: informational")
    code, out = _run("validate", str(project))
    assert code == 0 and "warning: CASL:" in out and missing in out
    code, out = _run("send", str(project), "--dry-run")
    assert code == 0 and "warning: CASL:" in out


def test_identification_is_checked_beyond_the_first_recipient(project: Path) -> None:
    """A mailing address shown only to members with a local is caught on a later recipient."""
    template = project.parent.parent / "templates" / "harkat-appeal" / "en.html"
    _edit(
        template,
        "{{ identification.mailing_address }}",
        "{% if local %}{{ identification.mailing_address }}{% endif %}",
    )
    _members(
        project,
        "a@example.org,Ana,Roy,en,active,12,implied\n"
        "b@example.org,Bo,Roy,en,active,5,implied\n"
        "c@example.org,Cy,Roy,en,active,,implied\n",
    )
    code, out = _run("validate", str(project))
    assert code != 0 and "en.html: the message lacks the mailing address" in out


def test_commercial_campaign_without_identification_is_refused(project: Path) -> None:
    """The identification block is required for commercial campaigns, named with its line."""
    text = project.read_text(encoding="utf-8")
    start = text.index("identification:")
    end = text.index("from:")
    project.write_text(text[:start] + text[end:], encoding="utf-8")
    code, out = _run("validate", str(project))
    assert code != 0 and "identification: missing: a commercial campaign" in out


def test_informational_campaign_without_identification_is_told_what_to_declare(
    project: Path,
) -> None:
    """A template reading identification in a campaign that declares none names the fix."""
    text = project.read_text(encoding="utf-8").replace(
        "purpose: commercial", "purpose: informational"
    )
    start, end = text.index("identification:"), text.index("from:")
    project.write_text(text[:start] + text[end:], encoding="utf-8")
    code, out = _run("validate", str(project))
    assert code != 0
    assert "en.html: undefined variable 'identification' (declare identification:" in out


def test_real_send_needs_the_unsubscribe_secret(project: Path, smtp_server, monkeypatch) -> None:
    """Without the secret a send to a real relay is refused; dry runs and the capture relay work."""
    monkeypatch.delenv("HARKAT_UNSUBSCRIBE_SECRET")
    server, handler = smtp_server()
    code, out = _send(project, server.port)
    assert code != 0 and "HARKAT_UNSUBSCRIBE_SECRET is not set" in out
    assert handler.messages == [] and not (project.parent.parent / "outbox").exists()
    assert _run("send", str(project), "--dry-run")[0] == 0
    monkeypatch.setenv("HARKAT_UNSUBSCRIBE_SECRET", "tiny-secret")
    code, out = _send(project, server.port)
    assert code != 0 and "shorter than 16" in out and "tiny-secret" not in out


def _key_pair(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "dkim.pem"
    return path, generate_key(path).encode("ascii")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [False, True])
def test_dkim_signatures_verify_and_cover_the_unsubscribe_headers(
    project: Path, smtp_server, tmp_path: Path, monkeypatch, workers: bool
) -> None:
    """Delivered messages (signed in-process or by render workers) verify; h= covers RFC 8058."""
    if workers:
        from harkat_mail.run import claims, renderpool

        monkeypatch.setattr(renderpool, "POOL_FROM", 10)
        monkeypatch.setattr(claims, "CLAIM_BATCH", 30)
    key_path, record = _key_pair(tmp_path)
    text = project.read_text(encoding="utf-8") + (
        f"dkim:\n  domain: cupw.example.org\n  selector: harkat2018\n  key_path: {key_path}\n"
    )
    project.write_text(text, encoding="utf-8")
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record

    server, handler = smtp_server()
    code, out = _send(project, server.port)
    assert code == 0, out
    assert len(handler.messages) > 100
    assert len({m.rcpt_tos[0] for m in handler.messages}) == len(handler.messages)
    for delivered in handler.messages:
        assert dkim.verify(delivered.data, dnsfunc=dns), delivered.rcpt_tos
        signature = str(delivered.message["DKIM-Signature"])
        signed = {h.strip().lower() for h in re.search(r"h=([^;]+)", signature)[1].split(":")}
        wanted = {"from", "subject", "date", "message-id"}
        assert wanted | {"list-unsubscribe", "list-unsubscribe-post"} <= signed
    assert set(asked) == {b"harkat2018._domainkey.cupw.example.org."}
    tampered = handler.messages[0].data.replace(b"Subject: ", b"Subject: FREE ", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_key_command_writes_a_private_key_and_the_record_that_verifies(
    tmp_path: Path,
) -> None:
    """dkim-key writes a mode-600 key and a TXT record whose key verifies its signatures."""
    from harkat_mail.mail.dkimsign import DkimSigner
    from harkat_mail.models import DkimConfig

    key_file = tmp_path / "dkim.pem"
    code, out = _run("dkim-key", str(key_file), "--domain", "cupw.example.org")
    assert code == 0, out
    assert key_file.stat().st_mode & 0o777 == 0o600
    line = out.splitlines()[-1]
    assert line.startswith("harkat._domainkey.cupw.example.org. IN TXT ( ")
    record = "".join(re.findall(r'"([^"]+)"', line)).encode()
    signer = DkimSigner(DkimConfig("cupw.example.org", "harkat", key_file))
    message = b"From: a@cupw.example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    assert dkim.verify(signer.sign(message), dnsfunc=lambda name, timeout=5: record)
    code, out = _run("dkim-key", str(key_file), "--domain", "cupw.example.org")
    assert code != 0 and "not overwriting" in out


def test_a_bad_dkim_key_is_refused_before_sending(project: Path, tmp_path: Path) -> None:
    """A key file that is not a PEM RSA key stops validate with a line naming the file."""
    bad = tmp_path / "dkim.pem"
    bad.write_text("not a key\n")
    text = project.read_text(encoding="utf-8")
    project.write_text(
        text + f"dkim:\n  domain: cupw.example.org\n  selector: s\n  key_path: {bad}\n",
        encoding="utf-8",
    )
    code, out = _run("validate", str(project))
    assert code != 0 and f"{bad}: not a usable DKIM private key" in out


HOSTILE = [
    "Ana\r\nBcc: victim@evil.example",
    "Bo\nX-Injected: 1",
    "Cy\rCc: victim@evil.example",
    "Di\x00Bcc: victim@evil.example",
    "=?utf-8?q?Ed=0D=0ABcc:_victim@evil.example?=",
    "Flo =?utf-8?b?DQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGU=?=",
    "Gil\u2028Bcc: victim@evil.example",
    "Hal\x85Bcc: victim@evil.example",
]


def test_hostile_member_values_never_create_a_header(project: Path, smtp_server) -> None:
    """CR, LF, NUL and encoded line breaks in names and subject vars inject no Bcc, Cc or header."""
    _edit(
        project, '  en: "Mohamed Harkat', '  en: "{{ first_name }} {{ last_name }}: Mohamed Harkat'
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for i, value in enumerate(HOSTILE):
        writer.writerow([f"m{i}@example.org", value, value, "en", "active", "12", "implied"])
    members = project.parent.parent / "lists" / "members.csv"
    members.write_text(HEADER + buffer.getvalue().replace("\x00", "\\0"), encoding="utf-8")
    raw = members.read_bytes().replace(b"\\0", b"\x00")
    members.write_bytes(raw)
    server, handler = smtp_server()
    code, out = _send(project, server.port)
    assert code == 0, out
    assert len(handler.messages) == len(HOSTILE)
    expected_headers = {
        "from",
        "reply-to",
        "list-id",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "content-language",
        "mime-version",
        "content-type",
    }
    for delivered in handler.messages:
        msg = delivered.message
        assert {k.lower() for k in msg} == expected_headers
        assert delivered.rcpt_tos == [msg["To"].addresses[0].addr_spec]
        assert len(msg["To"].addresses) == 1
        for header in ("To", "Subject"):
            value = str(msg[header])
            assert "\r" not in value and "\n" not in value
        head = delivered.data.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"^(bcc|cc|x-injected):", head, re.I | re.M)


def test_member_values_are_text_not_template_or_markup(project: Path, smtp_server) -> None:
    """{{ 7*7 }}, {% ... %} and <script> in a row arrive literally, escaped in the HTML part."""
    _members(
        project,
        'a@example.org,"{{ 7*7 }}",Roy,en,active,12,implied\n'
        'b@example.org,"<script>alert(1)</script>",Roy,en,active,12,implied\n'
        'c@example.org,"{% for x in range(3) %}X{% endfor %}",Roy,en,active,12,implied\n',
    )
    server, handler = smtp_server()
    code, out = _send(project, server.port)
    assert code == 0, out
    by_rcpt = {m.rcpt_tos[0]: m.message for m in handler.messages}
    first = by_rcpt["a@example.org"]
    text = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    assert "Dear {{ 7*7 }}," in text and "{{ 7*7 }}" in html and "49" not in text
    third = by_rcpt["c@example.org"].get_body(("plain",)).get_content()
    assert "Dear {% for x in range(3) %}X{% endfor %}," in third and "XXX" not in third
    second = by_rcpt["b@example.org"].get_body(("html",)).get_content().lower()
    assert "<script" not in second and "&lt;script&gt;alert(1)&lt;/script&gt;" in second


@pytest.mark.external
@pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (Debian: apt-get install spamassassin; .ci/run does)",
)
def test_sample_messages_score_below_two_in_spamassassin(project: Path, smtp_server) -> None:
    """SpamAssassin (local tests only) scores an English and a French sample message below 2.0."""
    server, handler = smtp_server()
    assert _send(project, server.port)[0] == 0
    samples = {}
    for delivered in handler.messages:
        samples.setdefault(delivered.message["Content-Language"], delivered.data)
    assert set(samples) == {"en", "fr"}
    for language, data in samples.items():
        result = subprocess.run(
            ["spamassassin", "-L", "-t"], input=data, capture_output=True, timeout=120, check=True
        )
        status = re.search(rb"^X-Spam-Status: \w+, score=(-?[\d.]+)", result.stdout, re.M)
        assert status is not None, result.stdout[:500]
        score = float(status.group(1))
        print(f"spamassassin score, {language}: {score}")
        assert score < 2.0, result.stdout.decode(errors="replace")[-2000:]


def test_consent_basis_is_in_the_send_log_file(project: Path, smtp_server) -> None:
    """The SQLite send log itself holds each sent recipient's consent basis."""
    server, _ = smtp_server()
    assert _send(project, server.port)[0] == 0
    log = project.parent.parent / "outbox" / "sept2018.sendlog.sqlite"
    with sqlite3.connect(log) as db:
        rows = db.execute("SELECT consent FROM recipient WHERE state = 'sent'").fetchall()
    assert rows and all(r[0].startswith(("implied", "express")) for r in rows)


def test_openssl_rsa_step_gives_dkimpys_exact_bytes(tmp_path: Path) -> None:
    """The OpenSSL signing step returns byte for byte what dkimpy's pure-Python RSA returns."""
    import hashlib

    import dkim.crypto

    from harkat_mail.mail.dkimsign import openssl_rsa_sign

    key_path, _ = _key_pair(tmp_path)
    private = dkim.crypto.parse_pem_private_key(key_path.read_bytes())
    assert dkim.RSASSA_PKCS1_v1_5_sign is openssl_rsa_sign  # installed on import
    for payload in (b"", b"From: a@example.org\r\n", bytes(range(256)) * 40):
        digest = hashlib.sha256(payload)
        assert openssl_rsa_sign(digest, private) == dkim.crypto.RSASSA_PKCS1_v1_5_sign(
            digest, private
        )
