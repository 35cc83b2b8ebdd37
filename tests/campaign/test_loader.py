"""Campaign YAML: the sample loads, and every mistake names the file, the line and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harkat_mail.campaign import load_campaign, parse_smtp_url
from harkat_mail.errors import ConfigError


def _edit(project: Path, old: str, new: str) -> Path:
    text = project.read_text(encoding="utf-8")
    assert old in text
    project.write_text(text.replace(old, new), encoding="utf-8")
    return project


def _line_of(project: Path, needle: str) -> int:
    for number, line in enumerate(project.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_sample_campaign_loads_with_paths_resolved(project: Path) -> None:
    """The sample resolves template, list and send log relative to the YAML file."""
    campaign = load_campaign(project)
    root = project.parent.parent
    assert campaign.template == root / "templates" / "harkat-appeal"
    assert campaign.contacts.paths == (root / "lists" / "members.csv",)
    assert campaign.contacts.segment == {"status": "active"}
    assert campaign.smtp.local
    assert set(campaign.subject) == {"en", "fr"}
    assert campaign.list_id == "sept2018.cupw.example.org"


def test_unknown_key_names_key_and_line(project: Path) -> None:
    """An unknown top-level key is an error that names it and its line."""
    _edit(project, "smtp: local", "smtp: local\nsmpt_host: mail.example.org")
    with pytest.raises(ConfigError) as info:
        load_campaign(project)
    line = _line_of(project, "smpt_host")
    assert f"sept2018.yaml:{line}: smpt_host: unknown key" in str(info.value)


def test_wrong_type_names_nested_key_and_line(project: Path) -> None:
    """A port that is not a number is an error naming smtp.port and its line."""
    _edit(project, "smtp: local", "smtp:\n  host: mail.example.org\n  port: twenty-five")
    with pytest.raises(ConfigError) as info:
        load_campaign(project)
    assert f":{_line_of(project, 'port: twenty')}: smtp.port: expected a whole number" in str(
        info.value
    )


def test_duplicate_key_is_an_error(project: Path) -> None:
    """A key written twice is refused instead of silently keeping the last value."""
    _edit(project, "name: sept2018", "name: sept2018\nname: other")
    with pytest.raises(ConfigError, match="name: the key appears twice"):
        load_campaign(project)


def test_missing_template_folder_is_named(project: Path) -> None:
    """A template path that does not exist names the key and the folder looked for."""
    _edit(project, "../templates/harkat-appeal", "../templates/nowhere")
    with pytest.raises(ConfigError, match=r"template: no template folder at .*nowhere"):
        load_campaign(project)


def test_password_in_yaml_is_refused(project: Path) -> None:
    """A password written into the YAML is refused; it must come from the environment."""
    _edit(project, "smtp: local", "smtp:\n  host: mail.example.org\n  password: hunter2")
    with pytest.raises(ConfigError) as info:
        load_campaign(project)
    assert "hunter2" not in str(info.value) and "password" in str(info.value)


def test_subject_needs_the_default_language(project: Path) -> None:
    """A per-language subject map without the default language is an error."""
    _edit(project, '  en: "Mohamed Harkat must stay', '  # en: "Mohamed Harkat must stay')
    with pytest.raises(ConfigError, match="subject: needs an entry for the default language"):
        load_campaign(project)


def test_header_values_cannot_hold_line_breaks(project: Path) -> None:
    """A subject with an embedded line break is refused (no header injection from YAML)."""
    _edit(project, '  en: "Mohamed Harkat must stay', '  en: "Bcc: x@example.org\\nMohamed')
    with pytest.raises(ConfigError, match="subject.en: must be one line"):
        load_campaign(project)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user"),
    [
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, "none", None),
        (
            "smtp://user@mail.example.org:587?tls=starttls",
            "mail.example.org",
            587,
            "starttls",
            "user",
        ),
        ("smtps://mail.example.org", "mail.example.org", 465, "tls", None),
        ("smtp://mail.example.org", "mail.example.org", 587, "starttls", None),
    ],
)
def test_smtp_url_parsing(url: str, host: str, port: int, tls: str, user: str | None) -> None:
    """--smtp URLs give host, port, TLS mode and user; plain smtp:// is STARTTLS off loopback."""
    config = parse_smtp_url(url)
    assert (config.host, config.port, config.tls, config.username) == (host, port, tls, user)
    assert not config.local


def test_smtp_url_with_password_is_refused() -> None:
    """A password in the --smtp URL is refused and not echoed back."""
    with pytest.raises(ConfigError) as info:
        parse_smtp_url("smtp://user:s3cret@mail.example.org")
    assert "s3cret" not in str(info.value)


def test_send_log_takes_a_postgresql_url_but_never_its_password(project: Path) -> None:
    """send_log: a postgresql:// URL is kept as written; a URL carrying a password is refused."""
    text = re.sub(r"(?m)^send_log:.*\n", "", project.read_text(encoding="utf-8"))
    url = "postgresql://harkat@db.example.org:5432/harkat?sslmode=verify-full"
    project.write_text(text + f"send_log: {url}\n", encoding="utf-8")
    assert load_campaign(project).send_log == url
    project.write_text(text + "send_log: postgresql://harkat:s3cret@db.example.org/harkat\n",
                       encoding="utf-8")
    with pytest.raises(ConfigError, match="send_log: never put the password in the URL") as raised:
        load_campaign(project)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("value", [".nan", ".inf", "0.001", "0", "-5", "7200", "'60'"])
def test_lease_must_be_a_sensible_number_of_seconds(project: Path, value: str) -> None:
    """lease: NaN, infinity, a blink or a day is refused naming the key; 60 and 2 load."""
    text = project.read_text(encoding="utf-8")
    project.write_text(text + f"lease: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lease: expected"):
        load_campaign(project)
    for good in ("60", "2"):
        project.write_text(text + f"lease: {good}\n", encoding="utf-8")
        assert load_campaign(project).lease == float(good)
