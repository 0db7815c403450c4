"""SQL for forwarding balances (``matching.forwarding_balances``) and the positive ``FB`` pairs applied to
them."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from services.matching.records import ForwardingApplication, ForwardingBalance
from services.matching.store._base import PgBase


class PgForwarding(PgBase):
    """Forwarding balances."""

    async def forwarding(
        self,
        tenant_id: str,
        account: str,
        reference: str,
        opened: Decimal,
        applied: Decimal,
        opened_on: date | None,
    ) -> None:
        await self.conn.execute(
            """INSERT INTO matching.forwarding_balances (tenant_id, account_key, reference, opened_amount,
                   applied_amount, opened_on) VALUES ($1,$2,$3,$4,$5,$6)
               ON CONFLICT (tenant_id, account_key, reference) DO UPDATE SET
                   opened_amount = matching.forwarding_balances.opened_amount + EXCLUDED.opened_amount,
                   applied_amount = matching.forwarding_balances.applied_amount + EXCLUDED.applied_amount,
                   opened_on = COALESCE(matching.forwarding_balances.opened_on, EXCLUDED.opened_on)""",
            tenant_id,
            account,
            reference,
            opened,
            applied,
            opened_on,
        )

    async def forwarding_balances(self, tenant_id: str, account: str) -> list[ForwardingBalance]:
        rows = await self.conn.fetch(
            """SELECT reference, opened_amount, applied_amount, opened_on FROM matching.forwarding_balances
               WHERE tenant_id = $1 AND account_key = $2 ORDER BY opened_on NULLS FIRST, reference FOR UPDATE""",
            tenant_id,
            account,
        )
        return [
            ForwardingBalance(r["reference"], r["opened_amount"], r["applied_amount"], r["opened_on"])
            for r in rows
        ]

    async def forwarding_applications(self, tenant_id: str, account: str) -> list[ForwardingApplication]:
        rows = await self.conn.fetch(
            """SELECT adjustment_id, amount, match_reference, NULLIF(btrim(reference), '') AS named, payment_date,
                      btrim(trace_number) AS trace_number, segment_ordinal, pair_index
               FROM matching.adjustments
               WHERE tenant_id = $1 AND account_key = $2 AND reason_code = 'FB' AND amount > 0
               ORDER BY payment_date, btrim(trace_number), segment_ordinal, pair_index, adjustment_id
               FOR UPDATE""",
            tenant_id,
            account,
        )
        return [
            ForwardingApplication(
                r["adjustment_id"],
                r["amount"],
                r["match_reference"],
                r["named"],
                r["payment_date"],
                r["trace_number"],
                r["segment_ordinal"],
                r["pair_index"],
            )
            for r in rows
        ]

    async def move_forwarding_application(
        self,
        tenant_id: str,
        account: str,
        adjustment_id: UUID,
        amount: Decimal,
        from_reference: str | None,
        to_reference: str,
        reason: str,
    ) -> None:
        if from_reference is not None:
            await self.conn.execute(
                """UPDATE matching.forwarding_balances SET applied_amount = applied_amount - $4
                   WHERE tenant_id = $1 AND account_key = $2 AND reference = $3""",
                tenant_id,
                account,
                from_reference,
                amount,
            )
            await self.conn.execute(
                """DELETE FROM matching.forwarding_balances WHERE tenant_id = $1 AND account_key = $2
                       AND reference = $3 AND opened_amount = 0 AND applied_amount = 0""",
                tenant_id,
                account,
                from_reference,
            )
        await self.forwarding(tenant_id, account, to_reference, Decimal("0.00"), amount, None)
        await self.conn.execute(
            """UPDATE matching.adjustments SET match_reference = $3, reason = $4
               WHERE tenant_id = $1 AND adjustment_id = $2""",
            tenant_id,
            adjustment_id,
            to_reference,
            reason,
        )
