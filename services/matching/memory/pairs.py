"""PLB pairs and pending staff actions, in memory (as ``store.pairs``)."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching.memory import rows
from services.matching.memory._tables import (
    AllocationRow,
    PendingAction,
    Tables,
    cents,
)
from services.matching.records import (
    Displaced,
    StoredPair,
)


class MemPairs(Tables):
    """PLB pairs, their buckets, and pending staff actions."""

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
        self.pairs.setdefault(
            (tenant_id, adjustment_id),
            rows.stored_pair(
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
            ),
        )

    async def parked_recoveries(self, tenant_id: str, account: str, keys: list[str]) -> list[StoredPair]:
        found = [
            p
            for p in self._tenant_pairs(tenant_id)
            if p.account_key == account and rows.parked(p) and set(p.match_keys) & set(keys)
        ]
        return sorted(found, key=rows.parked_order)

    async def reduce_unmatched(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str, bucket: str = "allocated"
    ) -> None:
        pair = self.pairs.get((tenant_id, adjustment_id))
        if pair is not None:
            self.pairs[tenant_id, adjustment_id] = rows.unmatched_reduced(pair, remaining, reason, bucket)

    async def sibling_pairs(
        self, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
    ) -> list[StoredPair]:
        found = [
            p
            for p in self._tenant_pairs(tenant_id)
            if p.remittance_id == remittance_id
            and p.match_reference == match_reference
            and p.reason_code == reason_code
        ]
        return sorted(found, key=lambda p: (p.segment_ordinal, p.pair_index))

    async def reclassify_as_refund(self, tenant_id: str, adjustment_id: UUID, reason: str) -> list[UUID]:
        self._set_pair(tenant_id, adjustment_id, bucket="refund_acknowledged", reason=reason)
        changed: list[UUID] = []
        for key, allocation in list(self.allocations.items()):
            if (
                key[0] == tenant_id
                and allocation.adjustment_id == adjustment_id
                and allocation.kind == "offset"
            ):
                self.allocations[key] = replace(allocation, kind="refund")
                changed.append(allocation.receivable_id)
        return sorted(set(changed))

    async def await_refund(self, tenant_id: str, adjustment_id: UUID, amount: Decimal, reason: str) -> None:
        pair = self.pairs.get((tenant_id, adjustment_id))
        if pair is not None:
            self.pairs[tenant_id, adjustment_id] = rows.refund_awaited(pair, amount, reason)

    async def reduce_awaiting(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
    ) -> None:
        pair = self.pairs.get((tenant_id, adjustment_id))
        if pair is not None:
            self.pairs[tenant_id, adjustment_id] = rows.awaiting_reduced(pair, remaining, reason)

    async def deferral_in(self, tenant_id: str, remittance_id: UUID, keys: list[str]) -> bool:
        return any(
            p.remittance_id == remittance_id and rows.deferral(p) and set(p.match_keys) & set(keys)
            for p in self._tenant_pairs(tenant_id)
        )

    async def displace_offsets_after(
        self, tenant_id: str, rid: UUID, after: date, amount: Decimal, reason: str
    ) -> list[Displaced]:
        recoveries = [
            (a, pair)
            for a in self._allocations_of(tenant_id, rid)
            if a.kind in ("offset", "refund")
            and a.effective_date > after
            and a.total > 0
            and (pair := self.pairs.get((tenant_id, a.adjustment_id))) is not None
        ]
        recoveries.sort(key=lambda found: (found[0].effective_date, *_position(*found)), reverse=True)
        touched: list[Displaced] = []
        left = amount
        for allocation, _ in recoveries:
            if left <= 0:
                break
            take = min(left, allocation.total)
            left -= take
            refund = allocation.kind == "refund"
            pair = self._take_back(tenant_id, allocation, allocation.total - take, take, refund, reason)
            touched.append(Displaced(pair, take, refund))
        return touched

    async def withdraw_guesses(
        self, tenant_id: str, account: str, rid: UUID, keys: list[str], reason: str
    ) -> list[Displaced]:
        guesses = [
            (a, pair)
            for (t, _), a in self.allocations.items()
            if t == tenant_id
            and a.receivable_id != rid
            and a.kind in ("offset", "refund")
            and a.total > 0
            and (pair := self.pairs.get((tenant_id, a.adjustment_id))) is not None
            and pair.account_key == account
            and pair.reason_code == "WO"
            and (pair.match_method or "").startswith("scored:")
            and set(pair.match_keys) & set(keys)
        ]
        guesses.sort(key=lambda found: (found[1].payment_date, *_position(*found)))
        touched: list[Displaced] = []
        for allocation, _ in guesses:
            refund = allocation.kind == "refund"
            pair = self._take_back(
                tenant_id, allocation, ZERO, allocation.total, refund, reason, unguess=True
            )
            touched.append(Displaced(pair, allocation.total, refund, allocation.receivable_id))
        return touched

    def _take_back(
        self,
        tenant_id: str,
        allocation: AllocationRow,
        kept: Decimal,
        taken: Decimal,
        refund: bool,
        reason: str,
        unguess: bool = False,
    ) -> StoredPair:
        """``store.pairs``' ``_take_back``."""
        self.allocations[tenant_id, allocation.allocation_id] = replace(
            allocation,
            to_interest=min(allocation.to_interest, kept),
            to_principal=kept - min(allocation.to_interest, kept),
        )
        pair = self.pairs[tenant_id, allocation.adjustment_id]
        method = None if unguess else pair.match_method
        if refund:
            changed = self._set_pair(
                tenant_id,
                pair.adjustment_id,
                match_method=method,
                awaiting_refund=cents(pair.awaiting_refund + taken),
            )
        else:
            unmatched = pair.unmatched_amount + taken
            changed = self._set_pair(
                tenant_id,
                pair.adjustment_id,
                match_method=method,
                unmatched_amount=cents(unmatched),
                reason=reason,
                bucket="unmatched" if unmatched == pair.amount else pair.bucket,
            )
        assert changed is not None
        return changed

    async def park_action(
        self,
        tenant_id: str,
        action_id: UUID,
        account: str,
        payer_id: str,
        reference: str,
        effective: date,
        envelope: bytes,
    ) -> None:
        self.pending.setdefault(
            (tenant_id, action_id),
            PendingAction(action_id, account, payer_id, reference, effective, envelope, next(self._arrivals)),
        )

    async def take_pending_actions(self, tenant_id: str, payer_id: str, keys: Sequence[str]) -> list[bytes]:
        taken = [
            a
            for (t, _), a in self.pending.items()
            if t == tenant_id and a.payer_id == payer_id and a.reference in keys
        ]
        for a in taken:
            del self.pending[tenant_id, a.action_id]
        taken.sort(key=lambda a: (a.effective_date, a.received, str(a.action_id)))
        return [a.envelope for a in taken]


def _position(allocation: AllocationRow, pair: StoredPair) -> tuple[str, int, int, str]:
    """An allocation's place among those of one day: its pair's TRN02 and PLB position, then its id (as
    ``store.pairs`` orders them)."""
    return (
        pair.trace_number.strip(" "),
        pair.segment_ordinal,
        pair.pair_index,
        str(allocation.allocation_id),
    )
