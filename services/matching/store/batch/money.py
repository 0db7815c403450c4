"""Allocations, interest postings and pairs as a batch keeps them: the money of a receivable the batch locked
is read once (allocations with their pairs' places, postings) and re-split, summed and scheduled in memory by
the rules ``memory.rows`` shares with the in-memory repository; allocations and pairs saved are held back and
a changed split is written once per allocation."""

from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching.domain import Dated
from services.matching.memory import rows
from services.matching.memory._tables import AllocationRow, cents
from services.matching.records import RecoveredTotals, ScheduledRecovery, StoredPair
from services.matching.repository import Splits
from services.matching.store.batch._state import BatchState, Row


class BatchMoney(BatchState):
    """Allocations, postings and pairs for one run of one batch."""

    async def _kept_money(self, tenant_id: str, rid: UUID) -> Row | None:
        """The receivable's money, read if needed, when the batch keeps the receivable; None (ask the ledger,
        after writing what was kept back) when it does not."""
        row = (tenant_id, rid)
        if row not in self.rows:
            await self.flush()
            return None
        await self.load_money([row])
        return row

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
        row = await self._kept_money(tenant_id, rid)
        key = (tenant_id, allocation_id)
        if row is None or key in self.owner:  # a second allocation of that id fails on this message
            await self.flush()
            await super().save_allocation(
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
            await self.forget_money()
            return
        self.money[row][allocation_id] = AllocationRow(
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
        self.owner[key] = row
        self.new_allocations.append(key)

    async def dated_money(self, tenant_id: str, rid: UUID) -> tuple[list[Dated], list[Dated]]:
        row = await self._kept_money(tenant_id, rid)
        if row is None:
            return await super().dated_money(tenant_id, rid)
        charges = [
            Dated(str(event_id), c.due_date, c.amount)
            for event_id, c in self.charges[row].items()
            if not c.held
        ]
        recoveries = [
            Dated(
                str(a.allocation_id),
                a.effective_date,
                a.total,
                rows.rank(a, self.places.get((tenant_id, a.adjustment_id))),
            )
            for a in self.money[row].values()
        ]
        return charges, recoveries

    async def set_splits(self, tenant_id: str, splits: Splits) -> None:
        keys = [(tenant_id, UUID(key)) for key in splits]
        if not all(key in self.owner for key in keys):
            await self.flush()
            await super().set_splits(tenant_id, splits)
            await self.forget_money()
            return
        for key, (interest, principal) in zip(keys, splits.values(), strict=True):
            held = self.allocation(key)
            split = (cents(interest), cents(principal))
            if (held.to_interest, held.to_principal) != split:
                changed = replace(held, to_interest=split[0], to_principal=split[1])
                self.money[self.owner[key]][key[1]] = changed
                self.moved.add(key)

    async def recovery_schedule(self, tenant_id: str, rid: UUID) -> list[ScheduledRecovery]:
        row = await self._kept_money(tenant_id, rid)
        if row is None:
            return await super().recovery_schedule(tenant_id, rid)
        return rows.schedule(self.money[row].values())

    async def recovered_totals(self, tenant_id: str, rid: UUID) -> RecoveredTotals:
        row = await self._kept_money(tenant_id, rid)
        if row is None:
            return await super().recovered_totals(tenant_id, rid)
        charged = sum((c.amount for c in self.charges[row].values() if not c.held), ZERO)
        return rows.totals(list(self.money[row].values()), charged)

    async def save_adjustment(
        self,
        tenant_id: str,
        account: str,
        adjustment_id: UUID,
        adj: ProviderAdjustmentReceived,
        *,
        match_reference: str | None,
        match_keys: list[str],
        bucket: str,
        unmatched: Decimal,
        reason: str,
        method: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        pair = rows.stored_pair(
            tenant_id,
            account,
            adjustment_id,
            adj,
            match_reference=match_reference,
            match_keys=match_keys,
            bucket=bucket,
            unmatched=unmatched,
            reason=reason,
            method=method,
            suggestion=suggestion,
        )
        self.new_pairs.setdefault((tenant_id, adjustment_id), pair)
        self.places.setdefault((tenant_id, adjustment_id), pair.place)

    async def sibling_pairs(
        self, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
    ) -> list[StoredPair]:
        asked = (tenant_id, remittance_id, match_reference, reason_code)
        stored = self.siblings.get(asked)
        if stored is None:
            stored = self.siblings[asked] = await super().sibling_pairs(*asked)
        known = {p.adjustment_id for p in stored}
        held = [
            p
            for (t, _), p in self.new_pairs.items()
            if t == tenant_id
            and p.remittance_id == remittance_id
            and p.match_reference == match_reference
            and p.reason_code == reason_code
            and p.adjustment_id not in known
        ]
        return sorted([*stored, *held], key=lambda p: (p.segment_ordinal, p.pair_index))
