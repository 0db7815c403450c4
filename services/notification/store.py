"""Notification's tables (schema ``notification``): notifications, the delivery log, the receivables copy and
its deadlines, the offset/receivable join, and digests. SQL only; callers own the transactions."""

import json
from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from contracts.events import NotificationEmitted, OffsetRecorded, ReceivableChanged
from services.notification.domain import Deadline, DigestItem, Milestone, OffsetApplication
from shared import phi
from shared.phi import TokenKind, Tokens


def _application(row: asyncpg.Record | None) -> OffsetApplication | None:
    if row is None:
        return None
    return OffsetApplication(
        offset_id=str(row["offset_id"]),
        receivable_id=str(row["receivable_id"]),
        reference=row["reference"],
        trace_number=row["trace_number"],
        payment_date=row["payment_date"],
        reason_code=row["reason_code"],
        applied=row["applied"],
        to_interest=row["to_interest"],
        to_principal=row["to_principal"],
        balance_after=row["balance_after"],
        status_after=row["status_after"],
    )


_CLAIM_COMPLETE = """UPDATE notification.offset_applications SET notified = true
     WHERE tenant_id = $1 AND offset_id = $2 AND receivable_id = $3 AND NOT notified
       AND applied IS NOT NULL AND balance_after IS NOT NULL
     RETURNING *"""


class NotificationStore:
    """Notification's repository: notifications, attempts, deadlines, offset applications, digests and tokens."""

    # --- notifications --------------------------------------------------------------------------------------

    async def add_notification(
        self, conn: asyncpg.Connection, tenant_id: str, n: NotificationEmitted
    ) -> bool:
        """Record a notification once; False on a replay."""
        done = await conn.fetchval(
            """INSERT INTO notification.notifications (tenant_id, notification_id, kind, severity, summary, facts,
                   related_event_id) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            n.notification_id,
            n.kind,
            n.severity,
            n.summary,
            json.dumps(n.facts),
            n.related_event_id,
        )
        return done is not None

    async def set_status(
        self, conn: asyncpg.Connection, tenant_id: str, notification_id: UUID, status: str
    ) -> None:
        """The notification's overall outcome: delivered, failed, digest or no_route."""
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
    ) -> tuple[int, int]:
        """Log an attempt as 'sending' before it leaves; returns (log row id, attempt number for the destination)."""
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
        return int(row["delivery_attempt_id"]), int(row["attempt"])

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

    # --- receivables copy and deadlines ---------------------------------------------------------------------

    async def upsert_receivable(
        self, conn: asyncpg.Connection, tenant_id: str, account_key: str, change: ReceivableChanged
    ) -> None:
        """Keep the latest state of a receivable (events of one account arrive in order)."""
        await conn.execute(
            """INSERT INTO notification.receivables (tenant_id, receivable_id, account_key, payer_id, reference,
                   policy, status, determination_date, balance, paused) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
               ON CONFLICT (tenant_id, receivable_id) DO UPDATE SET status = excluded.status,
                   determination_date = excluded.determination_date, balance = excluded.balance,
                   paused = excluded.paused, policy = excluded.policy, updated_at = now()""",
            tenant_id,
            change.receivable_id,
            account_key,
            change.payer_id,
            change.reference,
            change.policy,
            change.status,
            change.determination_date,
            change.balance,
            change.paused,
        )

    async def set_deadlines(
        self, conn: asyncpg.Connection, tenant_id: str, receivable_id: UUID, milestones: list[Milestone]
    ) -> None:
        """Record the receivable's watched milestones; pending ones no longer on its timeline are dropped (an
        appeal or a new determination date moves them), notified ones are kept as history."""
        await conn.execute(
            """DELETE FROM notification.deadlines WHERE tenant_id = $1 AND receivable_id = $2
                   AND notification_id IS NULL AND NOT ((milestone, due_on) IN
                       (SELECT * FROM unnest($3::text[], $4::date[])))""",
            tenant_id,
            receivable_id,
            [m[0] for m in milestones],
            [m[1] for m in milestones],
        )
        await conn.executemany(
            """INSERT INTO notification.deadlines (tenant_id, receivable_id, milestone, due_on)
               VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING""",
            [(tenant_id, receivable_id, label, day) for label, day in milestones],
        )

    async def due_deadlines(
        self, conn: asyncpg.Connection, today: date, lead_days: int
    ) -> list[tuple[str, str, Deadline]]:
        """(tenant, account key, deadline) of open receivables whose un-notified deadline falls in the lead window;
        locked so two workers' timers cannot both take one."""
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
            (
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

    async def mark_deadline(
        self, conn: asyncpg.Connection, tenant_id: str, deadline: Deadline, notification_id: UUID
    ) -> None:
        """Remember which notification announced a deadline (once per receivable + deadline)."""
        await conn.execute(
            """UPDATE notification.deadlines SET notification_id = $5
                WHERE tenant_id = $1 AND receivable_id = $2 AND milestone = $3 AND due_on = $4""",
            tenant_id,
            UUID(deadline.receivable_id),
            deadline.milestone,
            deadline.due_on,
            notification_id,
        )

    # --- offset applied: join of the allocation and the balance left ----------------------------------------

    async def record_allocation(
        self, conn: asyncpg.Connection, tenant_id: str, account_key: str, offset: OffsetRecorded, index: int
    ) -> OffsetApplication | None:
        """The allocation half of the join; the completed application when the balance half is already there."""
        a = offset.allocations[index]
        await conn.execute(
            """INSERT INTO notification.offset_applications (tenant_id, offset_id, receivable_id, account_key,
                   reference, trace_number, payment_date, reason_code, applied, to_interest, to_principal)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
               ON CONFLICT (tenant_id, offset_id, receivable_id) DO UPDATE SET account_key = excluded.account_key,
                   reference = excluded.reference, trace_number = excluded.trace_number,
                   payment_date = excluded.payment_date, reason_code = excluded.reason_code,
                   applied = excluded.applied, to_interest = excluded.to_interest,
                   to_principal = excluded.to_principal""",
            tenant_id,
            offset.offset_id,
            a.receivable_id,
            account_key,
            a.reference,
            offset.trace_number,
            offset.payment_date,
            offset.reason_code,
            a.to_interest + a.to_principal,
            a.to_interest,
            a.to_principal,
        )
        return _application(
            await conn.fetchrow(_CLAIM_COMPLETE, tenant_id, offset.offset_id, a.receivable_id)
        )

    async def record_balance(
        self, conn: asyncpg.Connection, tenant_id: str, offset_id: UUID, change: ReceivableChanged
    ) -> OffsetApplication | None:
        """The balance half of the join (a reduction caused by ``offset_id``); completed application or None."""
        await conn.execute(
            """INSERT INTO notification.offset_applications (tenant_id, offset_id, receivable_id, balance_after,
                   status_after) VALUES ($1,$2,$3,$4,$5)
               ON CONFLICT (tenant_id, offset_id, receivable_id) DO UPDATE SET
                   balance_after = excluded.balance_after, status_after = excluded.status_after""",
            tenant_id,
            offset_id,
            change.receivable_id,
            change.balance,
            change.status,
        )
        return _application(await conn.fetchrow(_CLAIM_COMPLETE, tenant_id, offset_id, change.receivable_id))

    # --- digests --------------------------------------------------------------------------------------------

    async def add_digest_item(
        self, conn: asyncpg.Connection, tenant_id: str, day: date, n: NotificationEmitted
    ) -> None:
        """Queue a notification for the tenant's digest of ``day`` (once)."""
        await conn.execute(
            """INSERT INTO notification.digest_items (tenant_id, digest_day, notification_id, kind, severity, summary)
               VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING""",
            tenant_id,
            day,
            n.notification_id,
            n.kind,
            n.severity,
            n.summary,
        )

    async def days_to_digest(self, conn: asyncpg.Connection, today: date) -> list[tuple[str, date]]:
        """(tenant, day) of closed days (before ``today``) that have items and no digest yet."""
        rows = await conn.fetch(
            """SELECT DISTINCT i.tenant_id, i.digest_day FROM notification.digest_items i
                WHERE i.digest_day < $1 AND NOT EXISTS (SELECT 1 FROM notification.digests d
                      WHERE d.tenant_id = i.tenant_id AND d.digest_day = i.digest_day)
                ORDER BY i.digest_day, i.tenant_id""",
            today,
        )
        return [(r["tenant_id"], r["digest_day"]) for r in rows]

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

    async def delivery_log(self, conn: asyncpg.Connection, tenant_id: str) -> list[dict[str, Any]]:
        """Every attempt of a tenant, oldest first (operators and tests)."""
        rows = await conn.fetch(
            """SELECT notification_id, channel, target, attempt, status, http_status, latency_ms, error
                 FROM notification.deliveries WHERE tenant_id = $1 ORDER BY delivery_attempt_id""",
            tenant_id,
        )
        return [dict(r) for r in rows]

    # --- what must never leave: digests of the account's patient control numbers (shared.phi) ---------------

    async def add_tokens(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account_key: str,
        rows: list[tuple[TokenKind, int, str]],
    ) -> None:
        """Remember (kind, length, digest) rows of an account (once each) and the lengths they have."""
        if not rows:
            return
        await conn.executemany(
            """INSERT INTO notification.sensitive_tokens (tenant_id, account_key, digest, kind, length)
               VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING""",
            [(tenant_id, account_key, digest, kind, length) for kind, length, digest in rows],
        )
        await conn.executemany(
            """INSERT INTO notification.sensitive_token_lengths (tenant_id, account_key, kind, length)
               VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING""",
            sorted({(tenant_id, account_key, kind, length) for kind, length, _ in rows}),
        )

    async def tokens_in(
        self, conn: asyncpg.Connection, tenant_id: str, account_key: str | None, texts: Iterable[str]
    ) -> Tokens:
        """The known tokens of one account (None: any account of the tenant, for a digest) that occur in
        ``texts``: the windows of the texts are hashed for the lengths the account has and looked up, so an
        account with a million claims costs one indexed lookup, not a million rows."""
        lengths = await conn.fetch(
            """SELECT DISTINCT kind, length FROM notification.sensitive_token_lengths
                WHERE tenant_id = $1 AND ($2::text IS NULL OR account_key = $2)""",
            tenant_id,
            account_key,
        )
        candidates = phi.candidates(list(texts), [(r["kind"], r["length"]) for r in lengths])
        if not candidates:
            return phi.NO_TOKENS
        rows = await conn.fetch(
            """SELECT DISTINCT kind, length, digest FROM notification.sensitive_tokens
                WHERE tenant_id = $1 AND ($2::text IS NULL OR account_key = $2) AND digest = ANY($3::text[])""",
            tenant_id,
            account_key,
            sorted({d for _, _, d in candidates}),
        )
        return Tokens.from_rows((r["kind"], r["length"], r["digest"]) for r in rows)
