"""Forwarding balances, in memory (as ``store.forwarding``)."""

from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.money import ZERO
from services.matching.memory._tables import (
    Tables,
    cents,
    trimmed,
)
from services.matching.records import (
    ForwardingApplication,
    ForwardingBalance,
)


class MemForwarding(Tables):
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
        known = self.forwardings.get((tenant_id, account, reference))
        self.forwardings[tenant_id, account, reference] = (
            ForwardingBalance(reference, cents(opened), cents(applied), opened_on)
            if known is None
            else ForwardingBalance(
                reference,
                cents(known.opened_amount + opened),
                cents(known.applied_amount + applied),
                known.opened_on if known.opened_on is not None else opened_on,
            )
        )

    async def forwarding_balances(self, tenant_id: str, account: str) -> list[ForwardingBalance]:
        found = [b for (t, a, _), b in self.forwardings.items() if (t, a) == (tenant_id, account)]
        return sorted(found, key=lambda b: (b.opened_on is not None, b.opened_on or date.min, b.reference))

    async def forwarding_applications(self, tenant_id: str, account: str) -> list[ForwardingApplication]:
        found = [
            ForwardingApplication(
                p.adjustment_id,
                p.amount,
                p.match_reference,
                trimmed(p.reference),
                p.payment_date,
                p.trace_number.strip(),
                p.segment_ordinal,
                p.pair_index,
            )
            for p in self._positive_fbs(tenant_id, account)
        ]
        return sorted(found, key=lambda a: a.position)

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
            known = self.forwardings.get((tenant_id, account, from_reference))
            if known is not None:
                left = replace(known, applied_amount=cents(known.applied_amount - amount))
                self.forwardings[tenant_id, account, from_reference] = left
                if left.opened_amount == 0 and left.applied_amount == 0:
                    del self.forwardings[tenant_id, account, from_reference]
        await self.forwarding(tenant_id, account, to_reference, ZERO, amount, None)
        self._set_pair(tenant_id, adjustment_id, match_reference=to_reference, reason=reason)
