"""Interest's tables (schema ``interest``): receivables as seen from events, their change history, accrual
postings, timelines, repayment plans and recoupment alerts. SQL only; decisions live in the domain."""

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

import asyncpg

from contracts.events import ReceivableChanged
from policies.facts import ErsPlan
from policies.payers import Milestone
from services.interest.domain import Change, Posted, Posting


def schedule_of(row: asyncpg.Record) -> list[tuple[date, Decimal, Decimal, str]] | None:
    """Matching's dated recovery schedule stored on a receivable row, or None when it never sent one."""
    raw = row["recovery_schedule"]
    if raw is None:
        return None
    return [(date.fromisoformat(d), Decimal(i), Decimal(p), kind) for d, i, p, kind in json.loads(raw)]


class InterestStore:
    """Interest's repository: receivable changes, postings, timelines, repayment plans and alerts; no decisions."""

    async def record_change(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        event_id: UUID,
        event_type: str,
        change: ReceivableChanged,
    ) -> bool:
        """Append the change to the receivable's history and keep its latest state; False for a replay.

        The latest state is only overwritten by a change not seen before, so an old event delivered again can
        never roll the receivable back. ``paid_on`` (the overpaid payment's date) and ``duplicate`` are what the
        state packs' look-back, notice-deadline and duplicate-exemption rules read, and ``identified_on`` the
        report-and-return deadline of an overpayment the provider identified: the earliest dates and any
        duplicate flag seen win, as in matching's own row.
        """
        await conn.execute(
            """INSERT INTO interest.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
                   determination_date, principal, principal_recovered, status, paid_on, duplicate, identified_on)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (tenant_id, receivable_id) DO NOTHING""",
            tenant_id,
            change.receivable_id,
            account,
            change.payer_id,
            change.reference,
            change.policy,
            change.determination_date,
            change.principal,
            change.principal_recovered,
            change.status,
            change.original_payment_date,
            change.duplicate,
            change.identified_on,
        )
        done = await conn.fetchval(
            """INSERT INTO interest.principal_history (tenant_id, receivable_id, event_id, effective_date, outstanding,
                   event_type, status, change_amount, principal, principal_recovered, interest_recovered)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            change.receivable_id,
            event_id,
            change.effective_date,
            change.principal - change.principal_recovered,
            event_type,
            change.status,
            change.change_amount,
            change.principal,
            change.principal_recovered,
            change.interest_recovered,
        )
        if done is None:
            return False
        await conn.execute(
            """UPDATE interest.receivables SET principal = $3, principal_recovered = $4, status = $5, policy = $6,
                   determination_date = $7, paid_on = LEAST(paid_on, $8::date), duplicate = duplicate OR $9,
                   identified_on = LEAST(identified_on, $10::date)
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            change.receivable_id,
            change.principal,
            change.principal_recovered,
            change.status,
            change.policy,
            change.determination_date,
            change.original_payment_date,
            change.duplicate,
            change.identified_on,
        )
        if change.recovery_schedule is not None:
            await conn.execute(
                "UPDATE interest.receivables SET recovery_schedule = $3::jsonb WHERE tenant_id = $1 AND receivable_id = $2",
                tenant_id,
                change.receivable_id,
                json.dumps(
                    [
                        [r.effective_date.isoformat(), str(r.to_interest), str(r.to_principal), r.kind]
                        for r in change.recovery_schedule
                    ]
                ),
            )
        return True

    async def lock_receivable(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID
    ) -> asyncpg.Record | None:
        """The receivable, locked for this transaction: the tick and the event path never post the same
        correction twice."""
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT * FROM interest.receivables WHERE tenant_id = $1 AND receivable_id = $2 FOR UPDATE",
            tenant_id,
            rid,
        )
        return row

    async def changes(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[Change]:
        """The receivable's changes in arrival order."""
        rows = await conn.fetch(
            """SELECT event_id, effective_date, event_type, status, change_amount, principal, principal_recovered,
                      interest_recovered FROM interest.principal_history
               WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY seq""",
            tenant_id,
            rid,
        )
        return [
            Change(
                str(r["event_id"]),
                r["effective_date"],
                r["event_type"],
                r["status"],
                r["change_amount"],
                r["principal"],
                r["principal_recovered"],
                r["interest_recovered"],
            )
            for r in rows
        ]

    async def posted(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> dict[int, Posted]:
        """Per period: the ledger total, the latest version and the rate of that version."""
        rows = await conn.fetch(
            """SELECT period_number, sum(amount) AS total, max(version) AS version,
                      (array_agg(annual_rate ORDER BY version DESC))[1] AS rate
               FROM interest.accruals WHERE tenant_id = $1 AND receivable_id = $2 GROUP BY period_number""",
            tenant_id,
            rid,
        )
        return {
            r["period_number"]: Posted(r["period_number"], r["total"], r["version"], r["rate"]) for r in rows
        }

    async def add_posting(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        rid: UUID,
        event_id: UUID,
        posting: Posting,
        cause: str,
    ) -> bool:
        """One row per (receivable, period, version): a concurrent or repeated recomputation inserts nothing."""
        p = posting.period
        done = await conn.fetchval(
            """INSERT INTO interest.accruals (tenant_id, receivable_id, period_number, version, event_id, period_start,
                   period_end, due_date, principal_basis, annual_rate, amount, cause)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            rid,
            p.number,
            posting.version,
            event_id,
            p.start,
            p.end,
            p.due,
            p.basis,
            p.rate,
            posting.amount,
            cause,
        )
        return done is not None

    async def save_progress(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        rid: UUID,
        policy_applied: str,
        accrued_through: date,
        next_due: date | None,
        policy_reason: str | None = None,
        policy_source: str | None = None,
    ) -> None:
        """Remember how far the receivable is accrued, when the tick must look at it again, and which policy
        applied and why (``configured``/``table``/``default`` and the entry: ``policies.config``)."""
        await conn.execute(
            """UPDATE interest.receivables SET policy_applied = $3, accrued_through = $4, next_due = $5,
                   policy_reason = $6, policy_source = $7
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            rid,
            policy_applied,
            accrued_through,
            next_due,
            policy_reason,
            policy_source,
        )

    async def save_timeline(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID, milestones: Sequence[Milestone]
    ) -> None:
        """Replace the receivable's stored timeline."""
        await conn.execute(
            "DELETE FROM interest.timelines WHERE tenant_id = $1 AND receivable_id = $2", tenant_id, rid
        )
        await conn.executemany(
            "INSERT INTO interest.timelines (tenant_id, receivable_id, ordinal, label, day) VALUES ($1,$2,$3,$4,$5)",
            [(tenant_id, rid, i, label, day) for i, (label, day) in enumerate(milestones, start=1)],
        )

    async def save_repayment_plan(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID, plan: ErsPlan
    ) -> bool:
        """Record the extended repayment schedule granted for a receivable; False when nothing changed.

        A later (or same-day, corrected) grant replaces the plan; an older grant arriving late never replaces a
        newer one, and the same grant again changes nothing.
        """
        installments = [[due.isoformat(), str(amount)] for due, amount in plan.installments]
        done = await conn.fetchval(
            """INSERT INTO interest.repayment_plans AS p (tenant_id, receivable_id, granted_on, installments)
               VALUES ($1,$2,$3,$4::jsonb) ON CONFLICT (tenant_id, receivable_id)
               DO UPDATE SET granted_on = EXCLUDED.granted_on, installments = EXCLUDED.installments,
                   recorded_at = now()
               WHERE EXCLUDED.granted_on >= p.granted_on
                 AND (EXCLUDED.granted_on, EXCLUDED.installments) IS DISTINCT FROM (p.granted_on, p.installments)
               RETURNING 1""",
            tenant_id,
            rid,
            plan.granted_on,
            json.dumps(installments),
        )
        return done is not None

    async def repayment_plan(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> ErsPlan | None:
        """The receivable's extended repayment schedule, if one was granted."""
        row = await conn.fetchrow(
            "SELECT granted_on, installments FROM interest.repayment_plans WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            rid,
        )
        if row is None:
            return None
        return ErsPlan(
            row["granted_on"],
            tuple((date.fromisoformat(d), Decimal(a)) for d, a in json.loads(row["installments"])),
        )

    async def add_alert(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        alert_id: UUID,
        rid: UUID,
        kind: str,
        rules: list[str],
        observed_on: date,
        amount: Decimal,
        detail: str,
        source_event: str,
    ) -> bool:
        """Record an alert once per id; False when it was already raised."""
        done = await conn.fetchval(
            """INSERT INTO interest.alerts (tenant_id, alert_id, receivable_id, kind, rules, observed_on, amount,
                   detail, source_event) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            alert_id,
            rid,
            kind,
            rules,
            observed_on,
            amount,
            detail,
            source_event,
        )
        return done is not None

    async def due_receivables(
        self, conn: asyncpg.Connection, day: date, tenants: Sequence[str] | None = None
    ) -> list[tuple[str, UUID]]:
        """Receivables whose next period has come due by ``day`` (optionally of some tenants only)."""
        rows = await conn.fetch(
            """SELECT tenant_id, receivable_id FROM interest.receivables
               WHERE next_due IS NOT NULL AND next_due <= $1 AND ($2::text[] IS NULL OR tenant_id = ANY($2::text[]))
               ORDER BY tenant_id, receivable_id""",
            day,
            list(tenants) if tenants is not None else None,
        )
        return [(r["tenant_id"], r["receivable_id"]) for r in rows]

    # --- read-only views for commands ----------------------------------------------------------------------------

    async def receivables_by_reference(
        self, conn: asyncpg.Connection, tenant_id: str, reference: str
    ) -> list[asyncpg.Record]:
        """Every receivable of a tenant with this reference (one per payer)."""
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM interest.receivables WHERE tenant_id = $1 AND reference = $2 ORDER BY payer_id",
            tenant_id,
            reference,
        )
        return rows

    async def stored_timeline(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID
    ) -> list[asyncpg.Record]:
        """The receivable's milestones as last computed."""
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT label, day FROM interest.timelines WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY ordinal",
            tenant_id,
            rid,
        )
        return rows

    async def interest_by_period(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID
    ) -> list[asyncpg.Record]:
        """Net interest per period, described by its latest version."""
        rows: list[asyncpg.Record] = await conn.fetch(
            """SELECT period_number, sum(amount) AS amount, count(*) AS postings,
                      (array_agg(period_start ORDER BY version DESC))[1] AS period_start,
                      (array_agg(period_end ORDER BY version DESC))[1] AS period_end,
                      (array_agg(due_date ORDER BY version DESC))[1] AS due_date,
                      (array_agg(principal_basis ORDER BY version DESC))[1] AS principal_basis,
                      (array_agg(annual_rate ORDER BY version DESC))[1] AS annual_rate
               FROM interest.accruals WHERE tenant_id = $1 AND receivable_id = $2
               GROUP BY period_number ORDER BY period_number""",
            tenant_id,
            rid,
        )
        return rows

    async def alerts_of(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[asyncpg.Record]:
        """Recoupment alerts raised for the receivable."""
        rows: list[asyncpg.Record] = await conn.fetch(
            """SELECT kind, rules, observed_on, amount, detail FROM interest.alerts
               WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY observed_on, kind""",
            tenant_id,
            rid,
        )
        return rows
