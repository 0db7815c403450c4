"""SQL for the money on receivables: allocations (``matching.allocations``, the audit trail of every dollar),
interest charges (``interest_charges``) and refund checks' credits (``refund_credits``)."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

from services.matching.domain import Dated, PeriodPosting
from services.matching.records import RecordedRefund, RecoveredTotals, RefundCredit, ScheduledRecovery
from services.matching.repository import Splits
from services.matching.store._base import PgBase

RANK = """CASE WHEN l.kind = 'netting' THEN '0'
                WHEN a.adjustment_id IS NULL THEN '2'
                ELSE '1 ' || btrim(a.trace_number) || ' ' || lpad(a.segment_ordinal::text, 6, '0') || ' '
                     || lpad(a.pair_index::text, 3, '0') END"""
"""A recovery's place among those of its business date (:class:`~services.matching.domain.Dated`): the
claim netting of the day first, then PLB pairs by TRN02 and PLB position, then staff's money — the order
the remittances of one day are read in, never the order our services saw them."""


class PgMoney(PgBase):
    """Allocations, interest charges and refund credits."""

    async def save_allocation(
        self,
        tenant_id: str,
        allocation_id: UUID,
        adjustment_id: UUID,
        rid: UUID,
        to_interest: Decimal,
        to_principal: Decimal,
        effective: date,
        kind: str = "offset",
        remittance_id: UUID | None = None,
    ) -> None:
        await self.conn.execute(
            """INSERT INTO matching.allocations (tenant_id, allocation_id, adjustment_id, receivable_id, to_interest,
                   to_principal, effective_date, kind, remittance_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)""",
            tenant_id,
            allocation_id,
            adjustment_id,
            rid,
            to_interest,
            to_principal,
            effective,
            kind,
            remittance_id,
        )

    async def cancel_netting(self, tenant_id: str, rid: UUID, remittance_id: UUID) -> Decimal:
        total = await self.conn.fetchval(
            """WITH netted AS (
                   SELECT allocation_id, to_interest + to_principal AS amount FROM matching.allocations
                   WHERE tenant_id = $1 AND receivable_id = $2 AND remittance_id = $3 AND kind = 'netting'
                     AND to_interest + to_principal > 0 FOR UPDATE),
               cleared AS (
                   UPDATE matching.allocations a SET to_interest = 0, to_principal = 0 FROM netted
                   WHERE a.tenant_id = $1 AND a.allocation_id = netted.allocation_id)
               SELECT COALESCE(sum(amount), 0) FROM netted""",
            tenant_id,
            rid,
            remittance_id,
        )
        return Decimal(total)

    async def netting_remittances(self, tenant_id: str, rid: UUID) -> list[UUID]:
        rows = await self.conn.fetch(
            """SELECT DISTINCT remittance_id FROM matching.allocations
               WHERE tenant_id = $1 AND receivable_id = $2 AND kind = 'netting' AND to_interest + to_principal > 0
               ORDER BY remittance_id""",
            tenant_id,
            rid,
        )
        return [r["remittance_id"] for r in rows]

    async def recorded_refunds(self, tenant_id: str, rid: UUID) -> list[RecordedRefund]:
        rows = await self.conn.fetch(
            """SELECT l.allocation_id, l.receivable_id, l.to_interest, l.to_principal, l.effective_date
               FROM matching.allocations l
               WHERE l.tenant_id = $1 AND l.receivable_id = $2 AND l.kind = 'refund'
                 AND l.to_interest + l.to_principal > 0
                 AND NOT EXISTS (SELECT 1 FROM matching.adjustments a
                                 WHERE a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id)
               ORDER BY l.effective_date, l.allocation_id FOR UPDATE""",
            tenant_id,
            rid,
        )
        return [
            RecordedRefund(
                r["allocation_id"],
                r["receivable_id"],
                r["to_interest"],
                r["to_principal"],
                r["effective_date"],
            )
            for r in rows
        ]

    async def hand_over_refund(
        self,
        tenant_id: str,
        recorded: RecordedRefund,
        allocation_id: UUID,
        adjustment_id: UUID,
        to_interest: Decimal,
        to_principal: Decimal,
    ) -> None:
        await self.conn.execute(
            """UPDATE matching.allocations SET to_interest = to_interest - $3, to_principal = to_principal - $4
               WHERE tenant_id = $1 AND allocation_id = $2""",
            tenant_id,
            recorded.allocation_id,
            to_interest,
            to_principal,
        )
        await self.save_allocation(
            tenant_id,
            allocation_id,
            adjustment_id,
            recorded.receivable_id,
            to_interest,
            to_principal,
            recorded.effective_date,
            "refund",
        )

    async def add_interest(
        self, tenant_id: str, event_id: UUID, rid: UUID, amount: Decimal, due: date, period: int
    ) -> bool:
        done = await self.conn.fetchval(
            """INSERT INTO matching.interest_charges (tenant_id, event_id, receivable_id, amount, due_date,
                   period_number, held)
               VALUES ($1,$2,$3,$4,$5,$6,true) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            event_id,
            rid,
            amount,
            due,
            period,
        )
        return done is not None

    async def period_postings(self, tenant_id: str, rid: UUID, period: int) -> list[PeriodPosting]:
        rows = await self.conn.fetch(
            """SELECT event_id, amount, held FROM matching.interest_charges
               WHERE tenant_id = $1 AND receivable_id = $2 AND period_number = $3
               ORDER BY event_id FOR UPDATE""",
            tenant_id,
            rid,
            period,
        )
        return [PeriodPosting(r["event_id"], r["amount"], r["held"]) for r in rows]

    async def hold_interest(self, tenant_id: str, event_ids: Sequence[UUID], held: bool) -> None:
        await self.conn.execute(
            """UPDATE matching.interest_charges SET held = $3
               WHERE tenant_id = $1 AND event_id = ANY($2::uuid[])""",
            tenant_id,
            list(event_ids),
            held,
        )

    async def dated_money(self, tenant_id: str, rid: UUID) -> tuple[list[Dated], list[Dated]]:
        charges = await self.conn.fetch(
            """SELECT event_id::text AS key, due_date AS day, amount FROM matching.interest_charges
               WHERE tenant_id = $1 AND receivable_id = $2 AND NOT held""",
            tenant_id,
            rid,
        )
        recoveries = await self.conn.fetch(
            f"""SELECT l.allocation_id::text AS key, l.effective_date AS day,
                       l.to_interest + l.to_principal AS amount, {RANK} AS rank
                FROM matching.allocations l LEFT JOIN matching.adjustments a
                  ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
                WHERE l.tenant_id = $1 AND l.receivable_id = $2""",  # noqa: S608 (a fixed expression)
            tenant_id,
            rid,
        )
        return (
            [Dated(r["key"], r["day"], r["amount"]) for r in charges],
            [Dated(r["key"], r["day"], r["amount"], r["rank"]) for r in recoveries],
        )

    async def set_splits(self, tenant_id: str, splits: Splits) -> None:
        await self.conn.executemany(
            """UPDATE matching.allocations SET to_interest = $3, to_principal = $4
               WHERE tenant_id = $1 AND allocation_id = $2::uuid AND (to_interest, to_principal) <> ($3, $4)""",
            [(tenant_id, key, interest, principal) for key, (interest, principal) in splits.items()],
        )

    async def recovery_schedule(self, tenant_id: str, rid: UUID) -> list[ScheduledRecovery]:
        rows = await self.conn.fetch(
            """SELECT effective_date, kind, sum(to_interest) AS to_interest, sum(to_principal) AS to_principal
               FROM matching.allocations WHERE tenant_id = $1 AND receivable_id = $2
               GROUP BY effective_date, kind HAVING sum(to_interest) <> 0 OR sum(to_principal) <> 0
               ORDER BY effective_date, kind""",
            tenant_id,
            rid,
        )
        return [
            ScheduledRecovery(r["kind"], r["effective_date"], r["to_interest"], r["to_principal"])
            for r in rows
        ]

    async def recovered_totals(self, tenant_id: str, rid: UUID) -> RecoveredTotals:
        row = await self.conn.fetchrow(
            """SELECT COALESCE((SELECT sum(to_principal) FROM matching.allocations
                                WHERE tenant_id = $1 AND receivable_id = $2), 0) AS principal_recovered,
                      COALESCE((SELECT sum(to_interest) FROM matching.allocations
                                WHERE tenant_id = $1 AND receivable_id = $2), 0) AS interest_recovered,
                      COALESCE((SELECT sum(to_interest + to_principal) FROM matching.allocations
                                WHERE tenant_id = $1 AND receivable_id = $2 AND kind = 'refund'), 0) AS refunded,
                      COALESCE((SELECT sum(amount) FROM matching.interest_charges
                                WHERE tenant_id = $1 AND receivable_id = $2 AND NOT held), 0)
                          AS interest_accrued""",
            tenant_id,
            rid,
        )
        assert row is not None
        return RecoveredTotals(
            row["principal_recovered"], row["interest_recovered"], row["refunded"], row["interest_accrued"]
        )

    async def over_recovered(self, tenant_id: str, rid: UUID) -> Decimal:
        excess = await self.conn.fetchval(
            """SELECT COALESCE((SELECT sum(to_interest + to_principal) FROM matching.allocations
                                WHERE tenant_id = $1 AND receivable_id = $2), 0)
                      - r.principal + r.written_off
                      - COALESCE((SELECT sum(amount) FROM matching.interest_charges
                                  WHERE tenant_id = $1 AND receivable_id = $2 AND NOT held), 0)
               FROM matching.receivables r WHERE r.tenant_id = $1 AND r.receivable_id = $2""",
            tenant_id,
            rid,
        )
        return Decimal(excess or 0)

    async def keep_refund_credit(
        self, tenant_id: str, action_id: UUID, rid: UUID, effective: date, amount: Decimal
    ) -> None:
        await self.conn.execute(
            """INSERT INTO matching.refund_credits (tenant_id, action_id, receivable_id, effective_date, amount)
               VALUES ($1,$2,$3,$4,$5) ON CONFLICT (tenant_id, action_id) DO UPDATE SET amount = EXCLUDED.amount""",
            tenant_id,
            action_id,
            rid,
            effective,
            amount,
        )

    async def refund_credits(self, tenant_id: str, rid: UUID, due_by: date) -> list[RefundCredit]:
        rows = await self.conn.fetch(
            """SELECT action_id, receivable_id, effective_date, amount FROM matching.refund_credits
               WHERE tenant_id = $1 AND receivable_id = $2 AND amount > 0
                 AND effective_date >= $3 ORDER BY effective_date, action_id FOR UPDATE""",
            tenant_id,
            rid,
            due_by,
        )
        return [
            RefundCredit(r["action_id"], r["receivable_id"], r["effective_date"], r["amount"]) for r in rows
        ]
