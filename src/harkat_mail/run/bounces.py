"""``bounces process``: read a bounce mailbox, attribute each report, apply it, put it aside.

Attribution, most reliable first: the VERP token in the address the report was sent to, or
in the Return-Path of the returned headers (it names campaign and member and cannot be
forged), then the original Message-ID found in the returned headers (stable per campaign x
member), then the bounced address among the campaign's members. A report for another
campaign, one no member matches, and mail that is no report at all (``other``) stay in the
mailbox and are reported; everything applied (auto-replies too, which change nothing) is
moved to the processed folder. A message already applied (the send log remembers the SHA-256
of each) changes nothing when read again.

Suppressions are written once, at the end of the run (one locked append to the project's
file), and only then are the messages remembered as applied: a run cut short applies them
all again next time. Soft scores are the project's (``store/scores.py``), not the campaign's.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from ..bounces import BouncedRecipient, Verdict, classify
from ..bounces.mailboxes import Mailbox, Returned, open_mailbox
from ..campaign.loader import project_suppression
from ..errors import ConfigError, HarkatError, SendLogError
from ..mail.tokens import secret_from_env
from ..mail.verp import Verp
from ..models import BounceConfig, Campaign
from ..store import Store, is_url, open_store
from ..store.scores import FILE_NAME as SCORES_FILE
from ..store.scores import SoftScores
from .suppress import record_refusals, suppress_all

SUPPRESS_WHY = {"hard": "bounced hard", "complaint": "complained"}


@dataclass
class BounceSummary:
    """What one ``bounces process`` did."""

    mailbox: str
    processed: str  # the folder processed mail went to
    read: int = 0
    moved: int = 0
    already: int = 0  # applied by an earlier run, moved now
    applied: Counter[str] = field(default_factory=Counter)  # rows changed, per class
    suppressed: int = 0
    refused: int = 0  # hard refusals at RCPT during the send, recorded now (a run cut short)
    left: list[str] = field(default_factory=list)  # "source: why", still in the mailbox
    blocks: int = 0  # block bounces in the campaign so far
    sent: int = 0
    alarm: str = ""


@dataclass
class _Members:
    """The campaign's rows, findable by VERP member tag, Message-ID and address."""

    by_tag: dict[bytes, str]
    by_id: dict[str, str]
    by_email: dict[str, tuple[str, str]]  # lower-cased address -> (key, email)
    emails: dict[str, str]  # key -> address as sent
    sent: int


async def _members(store: Store, campaign: str, verp: Verp) -> _Members:
    members = _Members({}, {}, {}, {}, 0)
    async for row in store.rows(campaign):
        if row["state"] in ("skipped", "pending"):
            continue
        key, email = row["key"], row["email"]
        members.by_tag[verp.member_tag(campaign, key)] = key
        if row["message_id"]:
            members.by_id[row["message_id"].strip().lower()] = key
        members.by_email[email.lower()] = (key, email)
        members.by_email.setdefault(key.lower(), (key, email))
        members.emails[key] = email
        members.sent += row["state"] in ("sent", "bounced", "complained", "unknown")
    return members


# The Message-IDs harkat-mail makes: <32 hex digits.CAMPAIGN@domain> (mail/message.py).
_OUR_ID = re.compile(r"^<?[0-9a-f]{32}\.([A-Za-z0-9._-]+)@[^>]+>?$")


class _Attributor:
    def __init__(self, campaign: Campaign, verp: Verp, members: _Members, trust: bool) -> None:
        self.verp = verp
        self.name = campaign.name
        self.tag = self.verp.campaign_tag(campaign.name)
        self.members = members
        self.by_address = trust

    def member(self, verdict: Verdict, bounced: BouncedRecipient, data: bytes) -> str | None:
        """The member key a bounced recipient is; "" for another campaign's; None: nobody.

        Anyone can mail the bounce address a text naming a member; only a VERP token cannot
        be forged. With ``verp: true`` every genuine report carries one (or at least our
        Message-ID), so the address alone is not trusted (``by_address`` False)."""
        token = self.verp.find(verdict.envelope_to) or self.verp.scan(data)
        if token is not None:
            if token.campaign != self.tag:
                return ""
            return self.members.by_tag.get(token.member)
        for message_id in verdict.message_ids:
            key = self.members.by_id.get(message_id.strip().lower())
            if key is not None:
                return key
        # Before the address: campaigns share lists, so another campaign's bounce often
        # names a member of this one too.
        for message_id in verdict.message_ids:
            ours = _OUR_ID.match(message_id.strip())
            if ours and ours.group(1) != self.name:
                return ""
        if not self.by_address:
            return None
        found = self.members.by_email.get(bounced.address.lower()) if bounced.address else None
        return found[0] if found is not None else None


def _config(campaign: Campaign) -> BounceConfig:
    if campaign.bounces is not None:
        return campaign.bounces
    return BounceConfig(address=parseaddr(campaign.sender_for(campaign.default_language))[1])


@dataclass
class _Run:
    """One ``bounces process``: where verdicts go, and what waits for the end of the run."""

    campaign: Campaign
    store: Store
    config: BounceConfig
    who: _Attributor
    summary: BounceSummary
    scores: SoftScores | None  # the project's, with SQLite send logs; else the store's
    day: int  # days since 1970, for soft scores
    suppress: dict[str, str] = field(default_factory=dict)  # address -> why, written at the end
    applied: list[str] = field(default_factory=list)  # digests, remembered at the end
    seen: set[str] = field(default_factory=set)  # digests met in this run

    async def soft_score(self, key: str, digest: str) -> int:
        if self.scores is None:
            return await self.store.soft_bounce(key, self.day)
        return await asyncio.to_thread(self.scores.count, key, self.day, digest)


async def _apply(run: _Run, key: str, bounced: BouncedRecipient, digest: str) -> None:
    kind = bounced.bounce_class
    email = run.who.members.emails[key]
    if await run.store.mark_bounced(
        run.campaign.name, key, kind, bounced.status, bounced.diagnostic
    ):
        run.summary.applied[kind] += 1
    if kind in ("hard", "complaint"):
        run.suppress[email] = f"{SUPPRESS_WHY[kind]} {bounced.status}".strip()
    elif kind == "soft":
        score = await run.soft_score(key, digest)
        if score >= run.config.soft_threshold:
            why = f"bounced soft on {score} days {bounced.status}".strip()
            run.suppress.setdefault(email, why)


async def _one(item: Returned, run: _Run) -> bool:
    """Apply one message; True when it is done with (to be moved)."""
    summary = run.summary
    if item.digest in run.seen or await run.store.bounce_seen(item.digest):
        summary.already += 1
        return True
    verdict = classify(item.data)
    if verdict.kind == "other":
        summary.left.append(f"{item.source}: not a bounce, complaint or auto-reply")
        return False
    if verdict.kind == "auto-reply":
        run.seen.add(item.digest)
        run.applied.append(item.digest)
        return True
    if not verdict.recipients:
        summary.left.append(f"{item.source}: a {verdict.kind} that names no recipient")
        return False
    found: list[tuple[str, BouncedRecipient]] = []
    for bounced in verdict.recipients:
        key = run.who.member(verdict, bounced, item.data)
        if key == "":
            summary.left.append(f"{item.source}: for another campaign")
            return False
        if key is None:
            named = bounced.address or "an unnamed recipient"
            why = "is no member of" if run.who.by_address else "has no VERP token or Message-ID of"
            summary.left.append(f"{item.source}: {named} {why} {run.campaign.name}")
            return False
        found.append((key, bounced))
    for key, bounced in found:
        await _apply(run, key, bounced, item.digest)
    run.seen.add(item.digest)
    run.applied.append(item.digest)
    return True


async def _finish(run: _Run) -> None:
    """Suppress, then remember the messages as applied: in this order, a run cut short
    between the two applies them again next time (idempotent), and a bounced member can
    never stay unsuppressed for good."""
    run.summary.suppressed = await suppress_all(
        run.campaign, run.store, run.suppress, _date(run.day)
    )
    await run.store.remember_bounces(run.applied, run.campaign.name)


def _date(day: int) -> date:
    return _EPOCH + timedelta(days=day)


_EPOCH = date(1970, 1, 1)


def _alarm(config: BounceConfig, blocks: int, sent: int) -> str:
    limit = config.block_alert * sent / 100 if config.block_alert_percent else config.block_alert
    if blocks == 0 or blocks < limit:
        return ""
    share = f" of {sent} sent ({100 * blocks / max(sent, 1):.1f}%)"
    return (
        f"WARNING: {blocks} recipients{share} refused this campaign as spam or by policy: the "
        "sender has a reputation or authentication problem (check SPF, DKIM, DMARC and "
        "blocklists before the next send); no member was suppressed for it"
    )


async def process_bounces(
    campaign: Campaign, source: str | None = None, today: date | None = None
) -> BounceSummary:
    """Read ``source`` (default ``bounces.mailbox``), apply every report, move what is done.

    ``today`` (default: the UTC date) is the day soft bounces are counted on."""
    config = _config(campaign)
    where = source or config.mailbox
    if not where:
        raise ConfigError(
            f"{campaign.source}: bounces.mailbox is not set; give --from PATH|URL"
        )
    if not is_url(campaign.send_log) and not Path(campaign.send_log).exists():
        raise SendLogError(f"{campaign.send_log}: no send log: nothing was sent for this campaign")
    day = ((today or datetime.now(UTC).date()) - _EPOCH).days
    box: Mailbox = open_mailbox(where, config.processed, config.password_env, config.ca_file)
    store = await open_store(campaign.send_log)
    scores = None
    summary = BounceSummary(mailbox=box.where, processed=box.processed)
    try:
        if not is_url(campaign.send_log):
            path = project_suppression(campaign.source).with_name(SCORES_FILE)
            scores = await asyncio.to_thread(SoftScores, path)
        verp = Verp(config.address, secret_from_env(campaign.unsubscribe.secret_env, False))
        members = await _members(store, campaign.name, verp)
        who = _Attributor(campaign, verp, members, trust=not config.verp)
        run = _Run(campaign, store, config, who, summary, scores, day)
        done: list[Returned] = []
        try:
            async for item in box.messages():
                summary.read += 1
                if await _one(item, run):
                    done.append(Returned(item.source, b"", item.handle))  # not its bytes
        except HarkatError:  # the mailbox failed midway: keep what was applied so far
            await _finish(run)
            raise
        await _finish(run)
        summary.moved = await box.move(done)
        summary.refused = await record_refusals(campaign, store)
        summary.blocks = (await store.bounce_counts(campaign.name)).get("block", 0)
        summary.sent = who.members.sent
        summary.alarm = _alarm(config, summary.blocks, summary.sent)
    finally:
        await box.close()
        await store.close()
        if scores is not None:
            scores.close()
    return summary
