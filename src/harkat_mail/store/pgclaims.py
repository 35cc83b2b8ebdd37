"""The PostgreSQL statements behind claims, take-overs, batched changes and relay budgets.

Each function runs inside a transaction its caller opened (postgres.py); every one of them
locks ``run`` rows before ``recipient`` rows, the order a claim takes them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from ..models import Grant, Limits
from . import budget
from .pgschema import BUDGET_LOCKS, NOW
from .protocol import OUTCOME_STATE, Change, code_patterns

Conn = AsyncConnection[Any]

# Due and unheld: pending, unknown when asked for, deferred once its wait is over. The first
# line repeats recipient_due's predicate word for word (see pgschema.py).
DUE = (
    "run_id IS NULL AND state IN ('pending', 'unknown', 'deferred')"
    " AND (state <> 'unknown' OR %(retry)s)"
    f" AND (state <> 'deferred' OR COALESCE(next_attempt_at, 0) <= {NOW})"
)
# Not held by a live run: the run was taken over, has finished, or never existed.
ORPHANED = (
    "NOT EXISTS (SELECT 1 FROM run WHERE run.id = r.run_id AND run.taken_over = 0"
    " AND run.finished_at IS NULL)"
)
# `(campaign, key) IN (subquery)` lets the planner hash-join the whole list against the
# claimed keys; `key = ANY(ARRAY(...))` runs the subquery first and looks each key up by the
# primary key. The subquery walks recipient_due in list order and skips rows that another
# claim has locked (instead of waiting for it); FOR UPDATE re-checks a row that another
# claim committed meanwhile, so a row is claimed once.
CLAIM = (
    "UPDATE recipient SET run_id = %(run)s WHERE campaign = %(campaign)s AND key = ANY(ARRAY("
    f"SELECT key FROM recipient WHERE campaign = %(campaign)s AND {DUE} ORDER BY seq"
    " LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
    " RETURNING seq, key, attempts, throttled, first_tried_at"
)
# One statement for a batch of changes to distinct keys: `sending` and verdicts touch
# different rows, so both updates can share one snapshot (and one round trip).
APPLY = (
    "WITH sending AS (UPDATE recipient SET state = 'sending', attempts = attempts + 1,"
    f" updated_at = {NOW}, first_tried_at = COALESCE(first_tried_at, {NOW})"
    " WHERE campaign = %(campaign)s AND run_id = %(run)s"
    " AND key = ANY(%(sending)s::text[])"
    " AND key NOT IN (SELECT address FROM suppression) RETURNING key),"
    # A try that reached the relay counts once: at `sending` if it got there.
    " verdict AS (UPDATE recipient r SET state = v.state, code = v.code, reply = v.reply,"
    " attempts = r.attempts + CASE WHEN r.state = 'sending' OR NOT v.tried THEN 0 ELSE 1 END,"
    " throttled = r.throttled + v.throttled,"
    f" first_tried_at = COALESCE(r.first_tried_at, CASE WHEN v.tried THEN {NOW} END),"
    f" next_attempt_at = v.retry_at, updated_at = {NOW},"
    " run_id = CASE WHEN v.state = 'deferred' THEN r.run_id END,"
    " relay = COALESCE(NULLIF(v.relay, ''), r.relay)"
    " FROM unnest(%(keys)s::text[], %(states)s::text[], %(codes)s::int[], %(replies)s::text[],"
    " %(retry_at)s::float8[], %(tried)s::bool[], %(throttled)s::int[], %(relays)s::text[])"
    " AS v (key, state, code, reply, retry_at, tried, throttled, relay)"
    " WHERE r.campaign = %(campaign)s AND r.run_id = %(run)s AND r.key = v.key RETURNING r.key)"
    " SELECT key FROM sending UNION ALL SELECT key FROM verdict"
)


NEXT_ATTEMPT = (
    "SELECT MIN(next_attempt_at) FROM recipient WHERE campaign = %s AND state = 'deferred'"
)


async def force_inputs(conn: Conn, campaign: str, inputs: str) -> None:
    """Record changed inputs; `deferred` rows no run holds are due at once."""
    await conn.execute("UPDATE campaign SET inputs = %s WHERE name = %s", (inputs, campaign))
    await conn.execute(
        "UPDATE recipient SET next_attempt_at = NULL WHERE campaign = %s"
        " AND state = 'deferred' AND run_id IS NULL",
        (campaign,),
    )


def reopen_failed(campaign: str, codes: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The statement turning matching `failed` rows no run holds back into `pending`."""
    patterns = code_patterns(codes)
    match = " AND CAST(code AS TEXT) LIKE ANY(%(patterns)s::text[])" if patterns else ""
    sql = (
        "UPDATE recipient SET state = 'pending', attempts = 0, next_attempt_at = NULL,"
        f" updated_at = {NOW} WHERE campaign = %(campaign)s AND state = 'failed'"
        f" AND run_id IS NULL{match}"
    )
    return sql, {"campaign": campaign, "patterns": patterns}


async def take_over(conn: Conn, campaign: str) -> int:
    """Take over the campaign's expired runs; the number of rows turned `unknown`."""
    # Lock the expired runs in id order, so two claimers taking over together never
    # deadlock; FOR UPDATE re-checks the lease, so a renewal that won the race stands.
    await conn.execute(
        "UPDATE run SET taken_over = 1 WHERE id IN (SELECT id FROM run WHERE campaign = %s"
        f" AND finished_at IS NULL AND taken_over = 0 AND lease_until < {NOW}"
        " ORDER BY id FOR UPDATE)",
        (campaign,),
    )
    # Rows of runs no longer live: release those not being sent first. A row that the lost
    # run marks `sending` meanwhile is re-checked after that commit and skipped here, and
    # then found by the next statement (which takes a newer snapshot).
    await conn.execute(
        "UPDATE recipient r SET run_id = NULL WHERE r.run_id IS NOT NULL"
        f" AND r.campaign = %s AND r.state <> 'sending' AND {ORPHANED}",
        (campaign,),
    )
    # `sending` with no live run (taken over, finished mid-send, or from before claims):
    # the message may have arrived, so it is `unknown`, never due again by itself.
    cur = await conn.execute(
        "UPDATE recipient r SET state = 'unknown', reason = 'interrupted while sending',"
        f" run_id = NULL, updated_at = {NOW} WHERE r.campaign = %s AND r.state = 'sending'"
        f" AND (r.run_id IS NULL OR {ORPHANED})",
        (campaign,),
    )
    return cur.rowcount


async def claim(
    conn: Conn, campaign: str, run_id: str, limit: int, retry_unknown: bool
) -> list[tuple[int, str, int, int, float | None]] | None:
    """Take over expired runs, then claim; None (after the take-over) when the run is not live."""
    await take_over(conn, campaign)
    # FOR SHARE: a take-over of this run by another claimer waits until this claim commits,
    # and its next statements then see (and release) what this claim took.
    cur = await conn.execute(
        "SELECT 1 FROM run WHERE id = %s AND taken_over = 0 AND finished_at IS NULL FOR SHARE",
        (run_id,),
    )
    if await cur.fetchone() is None:
        return None
    params = {"run": run_id, "campaign": campaign, "retry": retry_unknown, "limit": limit}
    return sorted(await (await conn.execute(CLAIM, params)).fetchall())


def distinct_runs(changes: Sequence[Change]) -> list[list[Change]]:
    """Consecutive groups in which no key repeats: each group is one APPLY, in order."""
    groups: list[list[Change]] = [[]]
    seen: set[str] = set()
    for change in changes:
        key = change if isinstance(change, str) else change[0].key
        if key in seen:
            groups.append([])
            seen.clear()
        seen.add(key)
        groups[-1].append(change)
    return [group for group in groups if group]


async def apply(conn: Conn, campaign: str, run_id: str, groups: list[list[Change]]) -> list[str]:
    """Apply each group (see ``distinct_runs``) in order; the keys refused, in order."""
    refused: list[str] = []
    for group in groups:
        verdicts = [change for change in group if not isinstance(change, str)]
        cur = await conn.execute(
            APPLY,
            {
                "campaign": campaign,
                "run": run_id,
                "sending": [change for change in group if isinstance(change, str)],
                "keys": [result.key for result, _ in verdicts],
                "states": [str(OUTCOME_STATE[result.outcome]) for result, _ in verdicts],
                "codes": [result.code for result, _ in verdicts],
                "replies": [result.reply[:500] for result, _ in verdicts],
                "retry_at": [retry_at for _, retry_at in verdicts],
                "tried": [result.tried for result, _ in verdicts],
                "throttled": [int(result.throttled) for result, _ in verdicts],
                "relays": [result.relay for result, _ in verdicts],
            },
        )
        done = {key for (key,) in await cur.fetchall()}
        keys = (change if isinstance(change, str) else change[0].key for change in group)
        refused += [key for key in keys if key not in done]
    return refused


async def take(conn: Conn, relay: str, want: int, limits: Limits) -> Grant:
    """``budget.steps`` with ``await``, serialised per relay across every machine."""
    # The clock is read after the lock (OFFSET 0 keeps the subquery, and so the wait,
    # first), so each taker refills the bucket from where the previous one left it.
    cur = await conn.execute(
        "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 FROM (SELECT"
        " pg_advisory_xact_lock(%s, hashtext(%s)) OFFSET 0) AS locked",
        (BUDGET_LOCKS, relay),
    )
    row = await cur.fetchone()
    assert row is not None
    steps, result = budget.steps(relay, want, limits, float(row[0])), None
    try:
        while True:
            sql, params = steps.send(result)
            # budget.py writes `?`; its SQL holds no other `?` and no `%`.
            cur = await conn.execute(sql.replace("?", "%s"), params)
            result = await cur.fetchone() if cur.description else None
    except StopIteration as done:
        grant: Grant = done.value
        return grant
