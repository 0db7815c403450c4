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
    StoredPair,
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

    async def forwarding_applied(self, tenant_id: str, account: str, reference: str) -> Decimal:
        known = self.forwardings.get((tenant_id, account, reference))
        return ZERO if known is None else known.applied_amount

    async def misplaced_applications(
        self, tenant_id: str, account: str, reference: str, opened_on: date
    ) -> list[ForwardingApplication]:
        found: list[tuple[bool, StoredPair]] = []
        for p in self._positive_fbs(tenant_id, account):
            if p.match_reference == reference:
                continue
            own = trimmed(p.reference)
            parked_on = (
                self.forwardings.get((tenant_id, account, p.match_reference)) if p.match_reference else None
            )
            nothing_opened = parked_on is None or parked_on.opened_amount == 0
            if own == reference or (own is None and p.payment_date >= opened_on and nothing_opened):
                found.append((own == reference, p))
        found.sort(key=lambda f: (not f[0], f[1].payment_date, f[1].segment_ordinal, f[1].pair_index))
        return [
            ForwardingApplication(p.adjustment_id, p.amount, p.match_reference, named) for named, p in found
        ]

    async def unnamed_applications(
        self, tenant_id: str, account: str, reference: str
    ) -> list[ForwardingApplication]:
        found = [
            p
            for p in self._positive_fbs(tenant_id, account)
            if p.match_reference == reference and trimmed(p.reference) != reference
        ]
        found.sort(key=lambda p: (p.payment_date, p.segment_ordinal, p.pair_index), reverse=True)
        return [ForwardingApplication(p.adjustment_id, p.amount, p.match_reference, False) for p in found]

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
