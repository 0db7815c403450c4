"""Allocations, interest charges and refund credits, in memory (as ``store.money``)."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.money import ZERO
from services.matching.domain import Dated, PeriodPosting
from services.matching.memory import rows
from services.matching.memory._tables import (
    AllocationRow,
    InterestCharge,
    Tables,
    cents,
)
from services.matching.records import (
    RecordedRefund,
    RecoveredTotals,
    RefundCredit,
    ScheduledRecovery,
)
from services.matching.repository import Splits


class MemMoney(Tables):
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
        if (tenant_id, allocation_id) in self.allocations:
            raise KeyError(f"allocation {allocation_id} exists (primary key)")
        self.allocations[tenant_id, allocation_id] = AllocationRow(
            tenant_id,
            allocation_id,
            adjustment_id,
            rid,
            cents(to_interest),
            cents(to_principal),
            effective,
            kind,
            remittance_id,
        )

    async def cancel_netting(self, tenant_id: str, rid: UUID, remittance_id: UUID) -> Decimal:
        total = ZERO
        for a in self._allocations_of(tenant_id, rid):
            if a.remittance_id == remittance_id and a.kind == "netting" and a.total > 0:
                total += a.total
                self.allocations[tenant_id, a.allocation_id] = replace(a, to_interest=ZERO, to_principal=ZERO)
        return total

    async def netting_remittances(self, tenant_id: str, rid: UUID) -> list[UUID]:
        found = [
            a.remittance_id
            for a in self._allocations_of(tenant_id, rid)
            if a.kind == "netting" and a.total > 0 and a.remittance_id is not None
        ]
        return sorted(set(found))

    async def recorded_refunds(self, tenant_id: str, rid: UUID) -> list[RecordedRefund]:
        found = [
            a
            for a in self._allocations_of(tenant_id, rid)
            if a.kind == "refund" and a.total > 0 and (tenant_id, a.adjustment_id) not in self.pairs
        ]
        found.sort(key=lambda a: (a.effective_date, a.allocation_id))
        return [
            RecordedRefund(a.allocation_id, a.receivable_id, a.to_interest, a.to_principal, a.effective_date)
            for a in found
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
        held = self.allocations[tenant_id, recorded.allocation_id]
        self.allocations[tenant_id, recorded.allocation_id] = replace(
            held, to_interest=held.to_interest - to_interest, to_principal=held.to_principal - to_principal
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
        if (tenant_id, event_id) in self.charges:
            return False
        self.charges[tenant_id, event_id] = InterestCharge(rid, cents(amount), due, period, True)
        return True

    async def period_postings(self, tenant_id: str, rid: UUID, period: int) -> list[PeriodPosting]:
        found = [
            PeriodPosting(event_id, c.amount, c.held)
            for (t, event_id), c in self.charges.items()
            if t == tenant_id and c.receivable_id == rid and c.period_number == period
        ]
        return sorted(found, key=lambda p: str(p.event_id))

    async def hold_interest(self, tenant_id: str, event_ids: Sequence[UUID], held: bool) -> None:
        for event_id in event_ids:
            charge = self.charges.get((tenant_id, event_id))
            if charge is not None:
                self.charges[tenant_id, event_id] = replace(charge, held=held)

    async def dated_money(self, tenant_id: str, rid: UUID) -> tuple[list[Dated], list[Dated]]:
        charges = [
            Dated(str(event_id), c.due_date, c.amount)
            for (t, event_id), c in self.charges.items()
            if t == tenant_id and c.receivable_id == rid and not c.held
        ]
        recoveries = [
            Dated(str(a.allocation_id), a.effective_date, a.total, self._rank(tenant_id, a))
            for a in self._allocations_of(tenant_id, rid)
        ]
        return charges, recoveries

    def _rank(self, tenant_id: str, allocation: AllocationRow) -> str:
        """``store.money``'s ``RANK`` expression."""
        pair = self.pairs.get((tenant_id, allocation.adjustment_id))
        return rows.rank(allocation, None if pair is None else pair.place)

    async def set_splits(self, tenant_id: str, splits: Splits) -> None:
        for key, (interest, principal) in splits.items():
            held = self.allocations.get((tenant_id, UUID(key)))
            if held is not None:
                self.allocations[tenant_id, held.allocation_id] = replace(
                    held, to_interest=cents(interest), to_principal=cents(principal)
                )

    async def recovery_schedule(self, tenant_id: str, rid: UUID) -> list[ScheduledRecovery]:
        return rows.schedule(self._allocations_of(tenant_id, rid))

    async def recovered_totals(self, tenant_id: str, rid: UUID) -> RecoveredTotals:
        return rows.totals(self._allocations_of(tenant_id, rid), self._charged(tenant_id, rid))

    async def over_recovered(self, tenant_id: str, rid: UUID) -> Decimal:
        row = self.receivables.get((tenant_id, rid))
        if row is None:
            return ZERO
        held = sum((a.total for a in self._allocations_of(tenant_id, rid)), ZERO)
        return held - row.principal + row.written_off - self._charged(tenant_id, rid)

    async def keep_refund_credit(
        self, tenant_id: str, action_id: UUID, rid: UUID, effective: date, amount: Decimal
    ) -> None:
        known = self.credits.get((tenant_id, action_id))
        self.credits[tenant_id, action_id] = (
            RefundCredit(action_id, rid, effective, cents(amount))
            if known is None
            else replace(known, amount=cents(amount))
        )

    async def refund_credits(self, tenant_id: str, rid: UUID, due_by: date) -> list[RefundCredit]:
        found = [
            c
            for (t, _), c in self.credits.items()
            if t == tenant_id and c.receivable_id == rid and c.amount > 0 and c.effective_date >= due_by
        ]
        return sorted(found, key=lambda c: (c.effective_date, c.action_id))
