"""Words for the person editing the campaign file: what a key is for, a valid example, what a
YAML syntax error means in plain words, and the nearest valid name for a typo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# key path (``*`` for any one key) -> (what it is for, a valid example)
KEY_HELP: dict[str, tuple[str, str]] = {
    "name": ("names the campaign and its files", "name: sept2018"),
    "purpose": (
        "says why members get this message (CASL: fundraising, sales and paid events are "
        "commercial)",
        "purpose: informational` or `purpose: commercial",
    ),
    "from": ("the sender members see", 'from: "Union Office <office@union.example.org>"'),
    "reply_to": ("where replies go", 'reply_to: "Organizer <organizer@union.example.org>"'),
    "subject": (
        "the subject line, per language",
        'subject: {en: "Join us on Monday", fr: "Joignez-vous à nous lundi"}',
    ),
    "template": ("the folder holding en.html, fr.html ...", "template: ../templates/appeal"),
    "timezone": ("the time zone of report times", "timezone: America/Toronto"),
    "list": ("the member list", "list: ../lists/members.csv"),
    "list.path": ("the member list file(s)", "path: ../lists/members.csv"),
    "list.columns": ("which header holds which field", "columns: {email: 'Work Email'}"),
    "list.columns.*": ("the header that holds this field", "email: 'Work Email'"),
    "list.segment": ("which members get the message", "segment: active"),
    "list.validate": ("how addresses are checked", "validate: syntax"),
    "list.dedupe_by": ("what makes two rows the same member", "dedupe_by: email"),
    "list.max_mb": ("the largest list file read, in MiB", "max_mb: 512"),
    "list.sheet": ("the workbook sheet to read", "sheet: Members"),
    "list.suppress": ("files of addresses never to write to", "suppress: ../lists/dnc.txt"),
    "segments": ("named member filters", "segments: {active: {status: active}}"),
    "segments.*": ("a filter on list columns", "active: {status: active}"),
    "language": ("where each member's language is", "language: {column: language, default: en}"),
    "language.column": ("the list column with each member's language", "column: language"),
    "language.default": ("the language of members with none", "default: en"),
    "vars": ("values every message can use", "vars: {donate_url: https://example.org}"),
    "send_log": ("where deliveries are recorded", "send_log: ../outbox/x.sendlog.sqlite"),
    "outbox": ("where the local relay files messages", "outbox: ../outbox/x"),
    "previews": ("where the dry run writes previews", "previews: ../previews/x"),
    "unsubscribe": (
        "the one-click unsubscribe every message carries",
        "unsubscribe: {url: https://union.example.org/unsubscribe}",
    ),
    "unsubscribe.url": ("the unsubscribe server's address", "url: https://x.org/unsubscribe"),
    "unsubscribe.mailto": ("an address that unsubscribes by mail", "mailto: leave@x.org"),
    "unsubscribe.secret_env": ("the variable holding the secret", "secret_env: HARKAT_SECRET"),
    "list_id": ("the List-Id header", "list_id: appeals.union.example.org"),
    "bilingual": ("one message per language or both in one", "bilingual: separate"),
    "retry": ("how often a deferred message is retried", "retry: {attempts: 3, delays: [60, 300]}"),
    "retry.attempts": ("tries in all, counting the first", "attempts: 3"),
    "retry.delays": ("seconds before each retry", "delays: [10, 60, 300]"),
    "identification": (
        "who sends, where and how to reach them (CASL)",
        "identification: {name: Union, mailing_address: 1 Main St, contact: info@union.org}",
    ),
    "identification.name": ("the sender's name, per language", "name: {en: Union, fr: Syndicat}"),
    "identification.mailing_address": ("a postal address", "mailing_address: 1 Main St, Ottawa"),
    "identification.contact": ("an email, phone or web address", "contact: info@union.org"),
    "dkim": ("the DKIM signature", "dkim: {domain: union.org, selector: s1, key_path: dkim.pem}"),
    "lease": ("seconds a silent run keeps its members", "lease: 60"),
    "smtp": ("the relay that sends", "smtp: local"),
    "smtp.host": ("the relay's host name", "host: smtp.union.example.org"),
    "smtp.port": ("the relay's port", "port: 587"),
    "smtp.tls": ("how the connection is encrypted", "tls: starttls"),
    "smtp.connections": ("sessions open at once", "connections: 4"),
    "smtp.rate": ("messages per second at most", "rate: 10"),
    "smtp.per_hour": ("messages per hour at most", "per_hour: 5000"),
    "smtp.per_day": ("messages per day at most", "per_day: 50000"),
    "smtp.timeout": ("seconds to wait for the relay", "timeout: 30"),
}


def key_help(at: tuple[str, ...]) -> tuple[str, str] | None:
    """What the key at ``at`` is for and a valid example, from the most specific entry."""
    for size in range(len(at), 0, -1):
        head = at[:size]
        for pattern in (".".join(head), ".".join((*head[:-1], "*"))):
            if pattern in KEY_HELP:
                return KEY_HELP[pattern]
    return None


def explain(at: tuple[str, ...], message: str) -> str:
    """``expected X, got Y``, then what the key is for and a valid example."""
    found = key_help(at)
    if found is None or not message.startswith("expected") or "e.g." in message:
        return message
    purpose, example = found
    return f"{message} ({purpose}); write `{example}`"


def missing(at: tuple[str, ...]) -> str:
    """A required key that is absent: what it is for and what to write."""
    found = key_help(at)
    if found is None:
        return "missing"
    purpose, example = found
    return f"missing; it {purpose}: write `{example}`"


def suggest(word: str, options: Iterable[str]) -> str:
    """`` did you mean 'fr'?`` for the nearest option, or nothing."""
    choices = sorted(options)
    lowered = word.lower()
    near = [c for c in choices if c == lowered or c == lowered[:2]]
    if not near and len(lowered) == 2:
        # a typo in a two-letter code keeps one letter in place, or swaps the two (fn, rf)
        near = [c for c in choices if c[0] == lowered[0]]
        near += [c for c in choices if c == lowered[::-1] or c[1] == lowered[1]]
    elif not near:
        near = difflib.get_close_matches(lowered, choices, n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


# PyYAML's problem text -> plain words (checked in order; the first fragment found wins)
_SYNTAX: tuple[tuple[str, str], ...] = (
    (
        "expected <block end>",
        "the indentation does not line up with the lines above: a key must start in the same "
        "column as the keys beside it (indent with spaces, the same number on each line)",
    ),
    (
        "did not find expected key",
        "the indentation does not line up with the lines above: a key must start in the same "
        "column as the keys beside it",
    ),
    (
        "did not find expected '-' indicator",
        "the list items do not line up: start each '- item' in the same column",
    ),
    (
        "mapping values are not allowed",
        "a ':' where none can go: the line is indented deeper than the key above it (line "
        "the keys up), or a value holding ': ' needs quotes (subject: \"Note: ...\")",
    ),
    (
        "could not find expected ':'",
        "a line has no ':' after its key (write key: value), or a quoted value is not closed",
    ),
    ("cannot start any token", "a tab or a character YAML cannot read: indent with spaces only"),
    ("found unexpected end of stream", "a quote or bracket is opened and never closed"),
    ("found undefined alias", "a '*name' with no '&name' before it: quote text starting with *"),
    (
        "expected ',' or ']'",
        "a [list] is not closed, or an item holds a ',' or ':' that needs quotes",
    ),
    (
        "expected ',' or '}'",
        "a {map} is not closed, or a value holds a ',' or ':' that needs quotes",
    ),
)


def plain_syntax(problem: str) -> str:
    """PyYAML's complaint in words a staff member can act on (its own words otherwise)."""
    for fragment, words in _SYNTAX:
        if fragment in problem:
            return words
    return problem
