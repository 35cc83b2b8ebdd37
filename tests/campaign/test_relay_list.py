"""``smtp:`` as a list: a pool of relays, each with its own settings and weight."""

from __future__ import annotations

from pathlib import Path

from harkat_mail.campaign import load_campaign

from .helpers import edit, line_of, refused

POOL = """smtp:
  - host: a.example.org
    username: sender
    password_env: RELAY_A_PASSWORD
    connections: 8
    rate: 40
    per_hour: 5000
    weight: 3
  - host: b.example.org
    port: 2525
    tls: none
    per_day: 2000
"""


def test_a_list_of_relays_is_the_pool_and_smtp_is_its_first(project: Path) -> None:
    """Each relay keeps its own settings; ``smtp`` is the first; weight defaults to 1."""
    campaign = load_campaign(edit(project, "smtp: local\n", POOL))
    a, b = campaign.relays
    assert campaign.smtp == a and campaign.pool == (a, b)
    assert (a.host, a.port, a.tls, a.username, a.password_env) == (
        "a.example.org", 587, "starttls", "sender", "RELAY_A_PASSWORD",
    )  # fmt: skip
    assert (a.connections, a.rate, a.per_hour, a.weight) == (8, 40.0, 5000, 3.0)
    assert (b.host, b.port, b.tls, b.per_day, b.weight, b.connections) == (
        "b.example.org", 2525, "none", 2000, 1.0, 4,
    )  # fmt: skip


def test_a_single_relay_is_a_pool_of_one(project: Path) -> None:
    """The map form (and local) leaves ``relays`` empty; ``pool`` is the one relay."""
    campaign = load_campaign(project)
    assert campaign.relays == () and campaign.pool == (campaign.smtp,)


def test_a_bad_key_in_the_second_relay_names_its_index_and_line(project: Path) -> None:
    """An unknown key in a relay of the list names smtp.1.<key> and its line."""
    edit(project, "smtp: local\n", POOL.replace("    per_day: 2000", "    per_dya: 2000"))
    assert f":{line_of(project, 'per_dya')}: smtp.1.per_dya: unknown key" in refused(project)


def test_pool_mistakes_are_refused_with_one_line(project: Path) -> None:
    """An empty list, the local relay in a list, a relay twice, a weight of 0: each refused."""
    cases = {
        "smtp: []\n": "smtp: the list of relays is empty",
        "smtp:\n  - local\n": "smtp.0: a pool of relays cannot include the local capture relay",
        "smtp:\n  - host: a.example.org\n  - host: a.example.org\n": (
            "smtp.1.host: a.example.org:587 is in the list twice"
        ),
        "smtp:\n  - host: a.example.org\n    weight: 0\n": "smtp.0.weight: expected a positive",
        "smtp:\n  - port: 25\n": "smtp.0: missing key 'host'",
    }
    original = project.read_text(encoding="utf-8")
    for text, message in cases.items():
        project.write_text(original.replace("smtp: local\n", text), encoding="utf-8")
        error = refused(project)
        assert message in error and "\n" not in error, error
