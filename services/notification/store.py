"""Notification's tables (schema ``notification``): notifications, the delivery log, the receivables copy and
its deadlines, the offset/receivable join, digests and the digests of patient control numbers.

SQL in, frozen dataclasses out, no decisions; callers own the transactions. The consumer's writes are
set-based (issue #18.2): each method takes every row of a batch and sends one statement (``unnest`` arrays in,
``RETURNING`` or one query out), so a batch of 200 messages costs what a batch of 2 does. The dispatcher
writes the delivery log a round at a time, autocommitted (an attempt must be on record before it leaves):
one statement leases a destination's jobs, one checks the log and logs them 'sending', one records the
outcomes, one sets the delivered notifications' status (``delivery.Dispatcher``); ``delivery.deliver_once`` still writes one attempt at a time.

A little over 500 lines: one repository over one schema; its tables are written together in each batch.
"""

import json
from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from services.notification.domain import Deadline, DigestItem, Milestone, OffsetApplication
from services.notification.rows import (
    AttemptRecord,
    AttemptStarted,
    DigestDay,
    DueDeadline,
    Half,
    JoinRow,
    LearntToken,
    NewNotification,
    ReceivableRow,
    RoundOutcome,
    ScannedTokens,
    TokenScope,
    join_key,
    joined,
)
from shared import phi
from shared.db import unnest_columns
from shared.phi import Tokens


def _last_per_key(rows: Sequence[Any], key: Any) -> list[Any]:
    """The last row per key, in first-seen order: what a batch of upserts leaves, as one statement may touch a
    row only once (``ON CONFLICT DO UPDATE``)."""
    last: dict[Any, Any] = {}
    for row in rows:
        last.pop(key(row), None)
        last[key(row)] = row
    return list(last.values())


class NotificationStore:
    """Notification's repository: notifications, attempts, deadlines, offset applications, digests and tokens."""

    # --- notifications --------------------------------------------------------------------------------------

    async def add_notifications(self, conn: asyncpg.Connection, rows: Sequence[NewNotification]) -> set[UUID]:
        """Record notifications once each (one statement); the ids not recorded before (a replay adds none)."""
        if not rows:
            return set()
        found = await conn.fetch(
            """INSERT INTO notification.notifications (tenant_id, notification_id, kind, severity, summary, facts,
                   related_event_id, status, token_generation)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                   $7::uuid[], $8::text[], $9::int8[])
               ON CONFLICT DO NOTHING RETURNING notification_id""",
            *unnest_columns(
                9,
                (
                    (
                        n.tenant_id,
                        n.notification_id,
                        n.kind,
                        n.severity,
                        n.summary,
                        json.dumps(n.facts),
                        n.related_event_id,
                        n.status,
                        n.token_generation,
                    )
                    for n in rows
                ),
            ),
        )
        return {r["notification_id"] for r in found}

    async def set_statuses(self, conn: asyncpg.Connection, rows: Sequence[tuple[str, UUID, str]]) -> None:
        """Notifications' overall outcomes (tenant, id, status) in one statement; a row already in that status
        (the status the consumer recorded from the routes, the usual case) is not written again."""
        if not rows:
            return
        await conn.execute(
            """UPDATE notification.notifications n SET status = s.status
                 FROM unnest($1::text[], $2::uuid[], $3::text[]) AS s(tenant_id, notification_id, status)
                WHERE n.tenant_id = s.tenant_id AND n.notification_id = s.notification_id
                  AND n.status IS DISTINCT FROM s.status""",
            *unnest_columns(3, _last_per_key(rows, lambda r: (r[0], r[1]))),
        )

    async def set_status(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, notification_id: UUID, status: str
    ) -> None:
        """One notification's outcome (the dispatcher, when a destination gave up)."""
        await conn.execute(
            "UPDATE notification.notifications SET status = $3 WHERE tenant_id = $1 AND notification_id = $2",
            tenant_id,
            notification_id,
            status,
        )

    # --- delivery log (autocommit: each statement is its own transaction) -----------------------------------

    async def delivered(
        self, conn: asyncpg.Connection, tenant_id: str, notification_id: UUID, channel: str, target: str
    ) -> bool:
        """True when this destination already has its one delivered attempt."""
        row = await conn.fetchval(
            """SELECT 1 FROM notification.deliveries WHERE tenant_id = $1 AND notification_id = $2
                   AND channel = $3 AND target = $4 AND status = 'delivered'""",
            tenant_id,
            notification_id,
            channel,
            target,
        )
        return row is not None

    async def begin_attempt(
        self, conn: asyncpg.Connection, tenant_id: str, notification_id: UUID, channel: str, target: str
    ) -> AttemptStarted:
        """Log an attempt as 'sending' before it leaves."""
        row = await conn.fetchrow(
            """INSERT INTO notification.deliveries (tenant_id, notification_id, channel, target, attempt, status)
               SELECT $1, $2, $3, $4, coalesce(max(attempt), 0) + 1, 'sending' FROM notification.deliveries
                WHERE tenant_id = $1 AND notification_id = $2 AND channel = $3 AND target = $4
               RETURNING delivery_attempt_id, attempt""",
            tenant_id,
            notification_id,
            channel,
            target,
        )
        return AttemptStarted(int(row["delivery_attempt_id"]), int(row["attempt"]))

    async def finish_attempt(
        self,
        conn: asyncpg.Connection,
        row_id: int,
        status: str,
        code: int | None,
        latency_ms: float,
        error: str | None,
    ) -> bool:
        """Close an attempt; False when another worker already logged this destination as delivered."""
        try:
            await conn.execute(
                """UPDATE notification.deliveries SET status = $2, http_status = $3, latency_ms = $4, error = $5,
                       finished_at = now() WHERE delivery_attempt_id = $1""",
                row_id,
                status,
                code,
                round(latency_ms, 1),
                error,
            )
        except asyncpg.UniqueViolationError:
            await conn.execute(
                """UPDATE notification.deliveries SET status = 'failed', latency_ms = $2,
                       error = 'already delivered by another worker', finished_at = now()
                    WHERE delivery_attempt_id = $1""",
                row_id,
                round(latency_ms, 1),
            )
            return False
        return True

    # --- the dispatcher's rounds: four statements per round of one destination, whatever its size ----------

    async def lease_jobs(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        channel: str,
        target: str,
        owner: str,
        lease_seconds: float,
        tenants: list[str] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Lease a destination's oldest ``limit`` queued rows nobody else holds (rows this worker holds already
        are renewed: a destination's drain task keeps what it has not finished), oldest first."""
        rows = await conn.fetch(
            """UPDATE notification.delivery_queue
                  SET leased_by = $3, leased_until = now() + make_interval(secs => $4)
                WHERE job_id IN (SELECT job_id FROM notification.delivery_queue
                                  WHERE channel = $1 AND target = $2
                                    AND (leased_until IS NULL OR leased_until < now() OR leased_by = $3)
                                    AND ($5::text[] IS NULL OR tenant_id = ANY($5::text[]))
                                  ORDER BY job_id LIMIT $6 FOR UPDATE SKIP LOCKED)
            RETURNING *""",
            channel,
            target,
            owner,
            lease_seconds,
            tenants,
            limit,
        )
        return sorted(rows, key=lambda r: int(r["job_id"]))

    async def begin_attempts(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        channel: str,
        target: str,
        notifications: Sequence[tuple[str, UUID]],
    ) -> dict[tuple[str, UUID], AttemptStarted]:
        """The log check and the 'sending' rows of a round in one statement: each (tenant, notification) not
        yet delivered to this destination gets its next attempt logged as 'sending'; one already delivered
        gets nothing and is missing from the answer (never send it again)."""
        if not notifications:
            return {}
        rows = await conn.fetch(
            """INSERT INTO notification.deliveries (tenant_id, notification_id, channel, target, attempt, status)
               SELECT j.tenant_id, j.notification_id, $3, $4,
                      coalesce((SELECT max(d.attempt) FROM notification.deliveries d
                                 WHERE d.tenant_id = j.tenant_id AND d.notification_id = j.notification_id
                                   AND d.channel = $3 AND d.target = $4), 0) + 1,
                      'sending'
                 FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS j(tenant_id, notification_id, pos)
                WHERE NOT EXISTS (SELECT 1 FROM notification.deliveries d
                                   WHERE d.tenant_id = j.tenant_id AND d.notification_id = j.notification_id
                                     AND d.channel = $3 AND d.target = $4 AND d.status = 'delivered')
                ORDER BY j.pos
               RETURNING delivery_attempt_id, tenant_id, notification_id, attempt""",
            *unnest_columns(2, notifications),
            channel,
            target,
        )
        return {
            (r["tenant_id"], r["notification_id"]): AttemptStarted(
                int(r["delivery_attempt_id"]), int(r["attempt"])
            )
            for r in rows
        }

    async def finish_round(self, conn: asyncpg.Connection | asyncpg.Pool, round_: RoundOutcome) -> int:
        """Everything a round decided, in one statement: the attempts' outcomes (a 'delivered' that another
        worker's delivered attempt beat is logged 'failed', so the log keeps one delivered attempt), the
        'sending' rows of jobs the round did not reach withdrawn (never attempted), the finished jobs
        (delivered, already delivered, given up) deleted from the queue, given-up notifications 'failed'.
        Returns how many outcomes were logged as delivered by another worker. The delivered notifications'
        status follows in :meth:`mark_delivered`."""
        done = list(round_.finished_jobs)
        beaten = await conn.fetchval(
            """WITH outcome AS (
                    SELECT o.*, o.status = 'delivered' AND EXISTS (
                               SELECT 1 FROM notification.deliveries x
                                 JOIN notification.deliveries me ON me.delivery_attempt_id = o.row_id
                                WHERE x.tenant_id = me.tenant_id AND x.notification_id = me.notification_id
                                  AND x.channel = me.channel AND x.target = me.target
                                  AND x.status = 'delivered' AND x.delivery_attempt_id <> o.row_id) AS beaten
                      FROM unnest($1::int8[], $2::text[], $3::int[], $4::numeric[], $5::text[])
                           AS o(row_id, status, http_status, latency_ms, error)),
                 logged AS (
                    UPDATE notification.deliveries d
                       SET status = CASE WHEN o.beaten THEN 'failed' ELSE o.status END,
                           http_status = CASE WHEN o.beaten THEN NULL ELSE o.http_status END,
                           latency_ms = o.latency_ms,
                           error = CASE WHEN o.beaten THEN 'already delivered by another worker'
                                        ELSE o.error END,
                           finished_at = now()
                      FROM outcome o WHERE d.delivery_attempt_id = o.row_id
                    RETURNING o.beaten),
                 withdrawn AS (
                    DELETE FROM notification.deliveries WHERE delivery_attempt_id = ANY($6::int8[])),
                 dequeued AS (
                    DELETE FROM notification.delivery_queue WHERE job_id = ANY($7::int8[])),
                 gave_up AS (
                    UPDATE notification.notifications n SET status = 'failed'
                      FROM unnest($8::text[], $9::uuid[]) AS f(tenant_id, notification_id)
                     WHERE n.tenant_id = f.tenant_id AND n.notification_id = f.notification_id)
               SELECT count(*) FILTER (WHERE beaten) FROM logged""",
            *unnest_columns(
                5,
                ((a.row_id, a.status, a.code, round(a.latency_ms, 1), a.error) for a in round_.attempts),
            ),
            list(round_.withdrawn),
            done,
            *unnest_columns(2, round_.gave_up),
        )
        return int(beaten or 0)

    async def mark_delivered(
        self, conn: asyncpg.Connection | asyncpg.Pool, keys: Sequence[tuple[str, UUID]]
    ) -> None:
        """Notifications (tenant, id) delivered to a destination become 'delivered' once no destination of
        theirs is left queued (a given-up one keeps 'failed'). A statement of its own, after the round's
        record has committed its queue deletions: two destinations of one notification finishing at the same
        moment each see the other's deletion by then, so the last of them sets the status (one statement
        doing both would see the other's row in its snapshot, and neither would)."""
        if not keys:
            return
        await conn.execute(
            """UPDATE notification.notifications n SET status = 'delivered'
                 FROM unnest($1::text[], $2::uuid[]) AS s(tenant_id, notification_id)
                WHERE n.tenant_id = s.tenant_id AND n.notification_id = s.notification_id
                  AND n.status = 'queued'
                  AND NOT EXISTS (SELECT 1 FROM notification.delivery_queue q
                                   WHERE q.tenant_id = s.tenant_id AND q.notification_id = s.notification_id)""",
            *unnest_columns(2, keys),
        )

    async def delivery_log(self, conn: asyncpg.Connection, tenant_id: str) -> list[AttemptRecord]:
        """Every attempt of a tenant, oldest first (operators and tests)."""
        rows = await conn.fetch(
            """SELECT notification_id, channel, target, attempt, status, http_status, latency_ms, error
                 FROM notification.deliveries WHERE tenant_id = $1 ORDER BY delivery_attempt_id""",
            tenant_id,
        )
        return [
            AttemptRecord(
                r["notification_id"],
                r["channel"],
                r["target"],
                r["attempt"],
                r["status"],
                r["http_status"],
                None if r["latency_ms"] is None else float(r["latency_ms"]),
                r["error"],
            )
            for r in rows
        ]

    # --- receivables copy and deadlines ---------------------------------------------------------------------

    async def upsert_receivables(self, conn: asyncpg.Connection, rows: Sequence[ReceivableRow]) -> None:
        """Keep the latest state of each receivable (one statement; events of one account arrive in order, so
        the last change of a receivable in the batch is its state)."""
        if not rows:
            return
        await conn.execute(
            """INSERT INTO notification.receivables (tenant_id, receivable_id, account_key, payer_id, reference,
                   policy, status, determination_date, balance, paused)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                   $7::text[], $8::date[], $9::numeric[], $10::bool[])
               ON CONFLICT (tenant_id, receivable_id) DO UPDATE SET status = excluded.status,
                   determination_date = excluded.determination_date, balance = excluded.balance,
                   paused = excluded.paused, policy = excluded.policy, updated_at = now()""",
            *unnest_columns(
                10,
                (
                    (
                        r.tenant_id,
                        r.receivable_id,
                        r.account_key,
                        r.payer_id,
                        r.reference,
                        r.policy,
                        r.status,
                        r.determination_date,
                        r.balance,
                        r.paused,
                    )
                    for r in _last_per_key(rows, lambda r: (r.tenant_id, r.receivable_id))
                ),
            ),
        )

    async def set_deadlines(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[str, UUID, Sequence[Milestone]]]
    ) -> None:
        """Record each receivable's watched milestones (tenant, receivable, milestones), one statement for the
        batch: pending ones no longer on its timeline are dropped (an appeal or a new determination date moves
        them, a closed receivable has none), notified ones are kept as history. The last entry of a receivable
        wins, as the last of its changes would one by one."""
        if not rows:
            return
        latest = _last_per_key(rows, lambda r: (r[0], r[1]))
        owners = unnest_columns(2, ((tenant, rid) for tenant, rid, _ in latest))
        wanted = unnest_columns(
            4, ((tenant, rid, label, day) for tenant, rid, milestones in latest for label, day in milestones)
        )
        await conn.execute(
            """WITH owner AS (SELECT * FROM unnest($1::text[], $2::uuid[]) AS o(tenant_id, receivable_id)),
                    wanted AS (SELECT * FROM unnest($3::text[], $4::uuid[], $5::text[], $6::date[])
                                   AS w(tenant_id, receivable_id, milestone, due_on)),
                    dropped AS (
                        DELETE FROM notification.deadlines d USING owner o
                         WHERE d.tenant_id = o.tenant_id AND d.receivable_id = o.receivable_id
                           AND d.notification_id IS NULL
                           AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.tenant_id = d.tenant_id
                                  AND w.receivable_id = d.receivable_id AND w.milestone = d.milestone
                                  AND w.due_on = d.due_on))
               INSERT INTO notification.deadlines (tenant_id, receivable_id, milestone, due_on)
               SELECT * FROM wanted ON CONFLICT DO NOTHING""",
            *owners,
            *wanted,
        )

    async def due_deadlines(self, conn: asyncpg.Connection, today: date, lead_days: int) -> list[DueDeadline]:
        """Deadlines of open receivables, not yet notified, that fall in the lead window; locked so two workers'
        timers cannot both take one."""
        rows = await conn.fetch(
            """SELECT d.tenant_id, r.account_key, d.receivable_id, r.reference, r.payer_id, d.milestone, d.due_on,
                      r.balance
                 FROM notification.deadlines d
                 JOIN notification.receivables r USING (tenant_id, receivable_id)
                WHERE d.notification_id IS NULL AND d.due_on BETWEEN $1 AND $1 + $2::int
                  AND r.status IN ('open', 'partially_recovered', 'paused') AND r.balance > 0
                ORDER BY d.due_on, d.tenant_id, d.receivable_id, d.milestone
                FOR UPDATE OF d SKIP LOCKED""",
            today,
            lead_days,
        )
        return [
            DueDeadline(
                r["tenant_id"],
                r["account_key"],
                Deadline(
                    str(r["receivable_id"]),
                    r["reference"],
                    r["payer_id"],
                    r["milestone"],
                    r["due_on"],
                    r["balance"],
                ),
            )
            for r in rows
        ]

    async def mark_deadlines(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[str, Deadline, UUID]]
    ) -> None:
        """Remember which notification announced each deadline (tenant, deadline, notification), one statement."""
        if not rows:
            return
        await conn.execute(
            """UPDATE notification.deadlines d SET notification_id = m.notification_id
                 FROM unnest($1::text[], $2::uuid[], $3::text[], $4::date[], $5::uuid[])
                      AS m(tenant_id, receivable_id, milestone, due_on, notification_id)
                WHERE d.tenant_id = m.tenant_id AND d.receivable_id = m.receivable_id
                  AND d.milestone = m.milestone AND d.due_on = m.due_on""",
            *unnest_columns(
                5,
                (
                    (tenant, UUID(d.receivable_id), d.milestone, d.due_on, nid)
                    for tenant, d, nid in _last_per_key(
                        rows, lambda r: (r[0], r[1].receivable_id, r[1].milestone, r[1].due_on)
                    )
                ),
            ),
        )

    # --- offset applied: join of the allocation and the balance left ----------------------------------------

    async def join(
        self, conn: asyncpg.Connection, halves: Sequence[Half]
    ) -> list[tuple[int, OffsetApplication]]:
        """The "offset applied" join for a batch's halves, laid on in order as one by one
        (:func:`~services.notification.rows.joined`), in two statements whatever their number: make sure each
        row exists and read them locked (the other half's topic may be another worker's, so its rows are read
        as that worker committed them), write back the rows that changed. The applications completed, by
        position of the half that completed each."""
        if not halves:
            return []
        keys = sorted({join_key(h) for h in halves})
        # One statement makes sure every row exists, locks it and reads it: a conflict "updates" the row to
        # itself, which locks it and returns it as last committed.
        found = await conn.fetch(
            """INSERT INTO notification.offset_applications AS a (tenant_id, offset_id, receivable_id)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[])
               ON CONFLICT (tenant_id, offset_id, receivable_id) DO UPDATE SET notified = a.notified
               RETURNING a.*""",
            *unnest_columns(3, keys),
        )
        stored = {row.key: row for row in (JoinRow(**dict(r.items())) for r in found)}
        rows, completed = joined(stored, halves)
        changed = [rows[key] for key in keys if rows[key] != stored.get(key)]
        if changed:
            await conn.execute(
                """UPDATE notification.offset_applications a SET account_key = c.account_key,
                       reference = c.reference, trace_number = c.trace_number, payment_date = c.payment_date,
                       reason_code = c.reason_code, applied = c.applied, to_interest = c.to_interest,
                       to_principal = c.to_principal, balance_after = c.balance_after,
                       status_after = c.status_after, notified = c.notified
                     FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                          $7::date[], $8::text[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[],
                          $13::text[], $14::bool[])
                          AS c(tenant_id, offset_id, receivable_id, account_key, reference, trace_number,
                               payment_date, reason_code, applied, to_interest, to_principal, balance_after,
                               status_after, notified)
                    WHERE a.tenant_id = c.tenant_id AND a.offset_id = c.offset_id
                      AND a.receivable_id = c.receivable_id""",
                *unnest_columns(
                    14,
                    (
                        (
                            r.tenant_id,
                            r.offset_id,
                            r.receivable_id,
                            r.account_key,
                            r.reference,
                            r.trace_number,
                            r.payment_date,
                            r.reason_code,
                            r.applied,
                            r.to_interest,
                            r.to_principal,
                            r.balance_after,
                            r.status_after,
                            r.notified,
                        )
                        for r in changed
                    ),
                ),
            )
        return completed

    # --- digests --------------------------------------------------------------------------------------------

    async def add_digest_items(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[str, date, UUID, str, str, str]]
    ) -> None:
        """Queue notifications for their tenant's digest of a day (tenant, day, id, kind, severity, summary),
        once each, in one statement."""
        if not rows:
            return
        await conn.execute(
            """INSERT INTO notification.digest_items (tenant_id, digest_day, notification_id, kind, severity, summary)
               SELECT * FROM unnest($1::text[], $2::date[], $3::uuid[], $4::text[], $5::text[], $6::text[])
               ON CONFLICT DO NOTHING""",
            *unnest_columns(6, rows),
        )

    async def days_to_digest(self, conn: asyncpg.Connection, today: date) -> list[DigestDay]:
        """Closed days (before ``today``) that have items and no digest yet."""
        rows = await conn.fetch(
            """SELECT DISTINCT i.tenant_id, i.digest_day FROM notification.digest_items i
                WHERE i.digest_day < $1 AND NOT EXISTS (SELECT 1 FROM notification.digests d
                      WHERE d.tenant_id = i.tenant_id AND d.digest_day = i.digest_day)
                ORDER BY i.digest_day, i.tenant_id""",
            today,
        )
        return [DigestDay(r["tenant_id"], r["digest_day"]) for r in rows]

    async def claim_digest(
        self, conn: asyncpg.Connection, tenant_id: str, day: date, notification_id: UUID
    ) -> list[DigestItem] | None:
        """Record the digest of (tenant, day) and return its items; None when another timer already did."""
        items = await conn.fetch(
            """SELECT notification_id, kind, severity, summary FROM notification.digest_items
                WHERE tenant_id = $1 AND digest_day = $2 ORDER BY kind, notification_id""",
            tenant_id,
            day,
        )
        done = await conn.fetchval(
            """INSERT INTO notification.digests (tenant_id, digest_day, notification_id, item_count)
               VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            day,
            notification_id,
            len(items),
        )
        if done is None:
            return None
        return [DigestItem(str(r["notification_id"]), r["kind"], r["severity"], r["summary"]) for r in items]

    # --- what must never leave: digests of the account's patient control numbers (shared.phi) ---------------

    async def add_tokens(self, conn: asyncpg.Connection, tokens: Sequence[LearntToken]) -> None:
        """Remember token digests of accounts (once each) and the lengths each account has, and move every
        account that learnt a digest it did not know to its next token generation, all in one statement for
        the whole batch (the inserts touch different tables, so one snapshot is enough). The generation moves
        in the transaction that adds the digests, so a scan that read generation G saw every digest learnt up
        to G (``scan``); accounts are bumped in key order, so two learners never deadlock on them."""
        if not tokens:
            return
        unique = sorted({(t.tenant_id, t.account_key, t.digest, t.kind, t.length) for t in tokens})
        shapes: dict[tuple[str, str, str, int], bool] = {}
        for t in tokens:
            owner = (t.tenant_id, t.account_key, t.kind, t.length)
            shapes[owner] = shapes.get(owner, True) and t.alphanumeric
        lengths = sorted((*owner, alphanumeric) for owner, alphanumeric in shapes.items())
        await conn.execute(
            """WITH learnt AS (
                   INSERT INTO notification.sensitive_tokens (tenant_id, account_key, digest, kind, length)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[])
                   ON CONFLICT DO NOTHING RETURNING tenant_id, account_key),
               lengths AS (
                   INSERT INTO notification.sensitive_token_lengths AS l
                          (tenant_id, account_key, kind, length, alphanumeric)
                   SELECT * FROM unnest($6::text[], $7::text[], $8::text[], $9::int2[], $10::bool[])
                   ON CONFLICT (tenant_id, account_key, kind, length)
                   DO UPDATE SET alphanumeric = false WHERE l.alphanumeric AND NOT excluded.alphanumeric)
               INSERT INTO notification.token_generations AS g (tenant_id, account_key, generation)
               SELECT DISTINCT tenant_id, account_key, 1 FROM learnt ORDER BY 1, 2
               ON CONFLICT (tenant_id, account_key) DO UPDATE SET generation = g.generation + 1""",
            *unnest_columns(5, unique),
            *unnest_columns(5, lengths),
        )

    async def clean_since_emitted(
        self, conn: asyncpg.Connection, emitted: Sequence[tuple[str, UUID, str]]
    ) -> set[UUID]:
        """Of these (tenant, notification id, account key), the notifications whose emission scan found
        nothing to mask and whose account has learnt no new digest since (still at the generation recorded
        with the notification): their stored text was scanned against every token the account has, so it
        needs no second scan on its way out. One query."""
        if not emitted:
            return set()
        rows = await conn.fetch(
            """SELECT n.notification_id
                 FROM unnest($1::text[], $2::uuid[], $3::text[]) AS e(tenant_id, notification_id, account_key)
                 JOIN notification.notifications n
                   ON n.tenant_id = e.tenant_id AND n.notification_id = e.notification_id
                 LEFT JOIN notification.token_generations g
                   ON g.tenant_id = e.tenant_id AND g.account_key = e.account_key
                WHERE n.token_generation = coalesce(g.generation, 0)""",
            *unnest_columns(3, sorted(set(emitted))),
        )
        return {r["notification_id"] for r in rows}

    async def tokens_in(self, conn: asyncpg.Connection, scopes: Sequence[TokenScope]) -> list[Tokens]:
        """The known tokens of each scope that occur in its texts (:meth:`scan` without the generations)."""
        return [found.tokens for found in await self.scan(conn, scopes)]

    async def scan(self, conn: asyncpg.Connection, scopes: Sequence[TokenScope]) -> list[ScannedTokens]:
        """The known tokens of each scope that occur in its texts, two queries for all scopes: the lengths
        (and token generation) each account has, then the digests of every window of the texts of those
        lengths. An account with a million claims costs one indexed lookup per window, not a million rows.

        The generation is read in the first query, so it is never newer than what the scan saw: a digest
        learnt after that snapshot moved the account past it (``add_tokens``), and delivery scans again."""
        if not scopes:
            return []
        owners = sorted({(s.tenant_id, s.account_key) for s in scopes}, key=lambda o: (o[0], o[1] or ""))
        found = await conn.fetch(
            """SELECT DISTINCT o.tenant_id, o.account_key, l.kind, l.length, l.alphanumeric,
                      coalesce(g.generation, 0) AS gen
                 FROM unnest($1::text[], $2::text[]) AS o(tenant_id, account_key)
                 LEFT JOIN notification.sensitive_token_lengths l ON l.tenant_id = o.tenant_id
                  AND (o.account_key IS NULL OR l.account_key = o.account_key)
                 LEFT JOIN notification.token_generations g
                   ON g.tenant_id = o.tenant_id AND g.account_key = o.account_key""",
            *unnest_columns(2, owners),
        )
        lengths: dict[tuple[str, str | None], set[tuple[str, int]]] = {}
        mixed: dict[tuple[str, str | None], set[int]] = {}  # id lengths with a token not alphanumeric
        generations: dict[tuple[str, str | None], int] = {}
        for r in found:
            owner = (r["tenant_id"], r["account_key"])
            generations[owner] = r["gen"]
            if r["kind"] is not None:
                lengths.setdefault(owner, set()).add((r["kind"], r["length"]))
                if not r["alphanumeric"]:
                    mixed.setdefault(owner, set()).add(r["length"])
        scanned = [
            None if s.account_key is None else generations.get((s.tenant_id, s.account_key)) for s in scopes
        ]
        wanted: set[tuple[str, str | None, str]] = set()
        for s in scopes:
            owner = (s.tenant_id, s.account_key)
            if known := lengths.get(owner):
                plain = {n for k, n in known if k == "id"} - mixed.get(owner, set())
                wanted |= {(*owner, d) for _, _, d in phi.candidates(s.texts, known, plain)}
        if not wanted:
            return [ScannedTokens(phi.NO_TOKENS, g) for g in scanned]
        rows = await conn.fetch(
            """SELECT DISTINCT w.tenant_id, w.account_key, t.kind, t.length, t.digest
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS w(tenant_id, account_key, digest)
                 JOIN notification.sensitive_tokens t ON t.tenant_id = w.tenant_id AND t.digest = w.digest
                WHERE w.account_key IS NULL OR t.account_key = w.account_key""",
            *unnest_columns(3, sorted(wanted, key=lambda w: (w[0], w[1] or "", w[2]))),
        )
        per_owner: dict[tuple[str, str | None], list[tuple[str, int, str]]] = {}
        for r in rows:
            per_owner.setdefault((r["tenant_id"], r["account_key"]), []).append(
                (r["kind"], r["length"], r["digest"])
            )
        return [
            ScannedTokens(Tokens.from_rows(per_owner.get((s.tenant_id, s.account_key), [])), g)
            for s, g in zip(scopes, scanned, strict=True)
        ]
