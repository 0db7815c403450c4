"""Allocations, interest postings and pairs as a batch keeps them: the money of a receivable the batch locked
is read once (allocations with their pairs' places, postings) and re-split, summed and scheduled in memory by
the rules ``memory.rows`` shares with the in-memory repository; allocations and pairs saved are held back and
a changed split is written once per allocation. An account's parked recoveries and scored guesses and a
payer's waiting staff actions, read ahead for a batch of evidence, answer the questions each evidence asks of
them (and when a guess or an action is really there, the question goes to the ledger as before)."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from functools import partial
from uuid import UUID

from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching.domain import Dated
from services.matching.memory import rows
from services.matching.memory._tables import AllocationRow, cents
from services.matching.records import Displaced, RecoveredTotals, ScheduledRecovery, StoredPair
from services.matching.repository import Splits
from services.matching.store.batch._state import ALLOCATIONS, PAIRS, BatchState, Row


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
        if (method or "").startswith("scored:"):
            self.scored.add((tenant_id, account))

    async def sibling_pairs(
        self, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
    ) -> list[StoredPair]:
        asked = (tenant_id, remittance_id, match_reference, reason_code)
        stored = self.siblings.get(asked)
        if stored is None:
            if self.pair_changes:  # the ledger must have them before its rows are kept as they stand
                await self.flush(PAIRS)
            stored = self.siblings[asked] = self.remember(await super().sibling_pairs(*asked))
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
        return self.placed(sorted([*stored, *held], key=lambda p: (p.segment_ordinal, p.pair_index)))

    async def parked_recoveries(self, tenant_id: str, account: str, keys: list[str]) -> list[StoredPair]:
        queue = self.parked.get((tenant_id, account))
        if queue is None:
            await self.flush(PAIRS)
            return self.placed(self.remember(await super().parked_recoveries(tenant_id, account, keys)))
        named = set(keys)
        held = [p for (t, _), p in self.new_pairs.items() if t == tenant_id and p.account_key == account]
        found = [p for p in [*queue, *held] if rows.parked(p) and named.intersection(p.match_keys)]
        return self.placed(sorted(found, key=rows.parked_order))

    async def withdraw_guesses(
        self, tenant_id: str, account: str, rid: UUID, keys: list[str], reason: str
    ) -> list[Displaced]:
        guesses = self.guessed.get((tenant_id, account))
        named = set(keys)
        if (
            guesses is not None
            and (tenant_id, account) not in self.scored
            and not any(other != rid and named & pair_keys for pair_keys, other, _ in guesses)
        ):
            return []  # nothing the scored search applied elsewhere names one of the keys
        await self.flush(PAIRS, ALLOCATIONS)
        touched = await super().withdraw_guesses(tenant_id, account, rid, keys, reason)
        if touched:
            await self.forget_money()
        return touched

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
        await super().park_action(tenant_id, action_id, account, payer_id, reference, effective, envelope)
        self.waiting.get((tenant_id, payer_id), set()).add(reference)

    async def take_pending_actions(self, tenant_id: str, payer_id: str, keys: Sequence[str]) -> list[bytes]:
        waiting = self.waiting.get((tenant_id, payer_id))
        if waiting is not None and waiting.isdisjoint(keys):
            return []
        taken = await super().take_pending_actions(tenant_id, payer_id, keys)
        if waiting is not None:
            waiting.difference_update(keys)
        return taken

    async def reduce_unmatched(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str, bucket: str = "allocated"
    ) -> None:
        await self._pair_changed(
            tenant_id,
            adjustment_id,
            lambda p: rows.unmatched_reduced(p, remaining, reason, bucket),
            partial(super().reduce_unmatched, tenant_id, adjustment_id, remaining, reason, bucket),
        )

    async def await_refund(self, tenant_id: str, adjustment_id: UUID, amount: Decimal, reason: str) -> None:
        await self._pair_changed(
            tenant_id,
            adjustment_id,
            lambda p: rows.refund_awaited(p, amount, reason),
            partial(super().await_refund, tenant_id, adjustment_id, amount, reason),
        )

    async def reduce_awaiting(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
    ) -> None:
        await self._pair_changed(
            tenant_id,
            adjustment_id,
            lambda p: rows.awaiting_reduced(p, remaining, reason),
            partial(super().reduce_awaiting, tenant_id, adjustment_id, remaining, reason),
        )

    async def _pair_changed(
        self,
        tenant_id: str,
        adjustment_id: UUID,
        change: Callable[[StoredPair], StoredPair],
        send: Callable[[], Awaitable[None]],
    ) -> None:
        """Hold the change back (:meth:`_hold_change`), else ``send`` the plain repository's statement after
        writing the pairs held back (:meth:`_changed_pair`)."""
        if not self._hold_change(tenant_id, adjustment_id, change):
            await self.flush(PAIRS)
            await send()
            self._changed_pair(tenant_id, adjustment_id, change)

    async def reclassify_as_refund(self, tenant_id: str, adjustment_id: UUID, reason: str) -> list[UUID]:
        """The pair's change is held back like the others; its offsets become refunds in the kept money (those
        saved by this batch are inserted as refunds) and, for those the ledger holds, in one statement, whose
        answer names every receivable they are on: the batch need not know them all."""
        if not self._hold_change(tenant_id, adjustment_id, lambda p: rows.acknowledged(p, reason)):
            # A pair the batch neither holds nor read (the WO being explained, not saved yet): nothing held back
            # or read ahead is that row, and its bucket and explanation decide no list it could join.
            await self._acknowledge_pair(tenant_id, adjustment_id, reason)
        converted = {
            key: replace(allocation, kind="refund")
            for key, allocation in ((k, self.allocation(k)) for k in self.owner if k[0] == tenant_id)
            if allocation.adjustment_id == adjustment_id and allocation.kind == "offset"
        }
        for key, allocation in converted.items():
            self.money[self.owner[key]][key[1]] = allocation
        stored = await self._offsets_to_refunds(tenant_id, adjustment_id)
        return sorted({*stored, *(a.receivable_id for a in converted.values())})

    def _hold_change(
        self, tenant_id: str, adjustment_id: UUID, change: Callable[[StoredPair], StoredPair]
    ) -> bool:
        """Change a pair the batch holds back or knows as stored, to be written with the batch's pairs; False
        (send the statement) for a pair it does not know, or a change the database would refuse (less than
        nothing awaiting a refund), so that it fails on the message that made it."""
        row = (tenant_id, adjustment_id)
        held = self.new_pairs.get(row)
        pair = held or self.seen.get(row)
        if pair is None:
            return False
        changed = change(pair)
        if changed.awaiting_refund < 0:
            return False
        if held is not None:
            self.new_pairs[row] = changed
        else:
            self.pair_changes.add(row)
        self.repair(tenant_id, changed)
        return True

    def _changed_pair(
        self, tenant_id: str, adjustment_id: UUID, change: Callable[[StoredPair], StoredPair]
    ) -> None:
        """The statement changed one pair (the same rule changes the copies read ahead); a pair never read ahead
        makes the copies of its kind unreliable, so they are read again."""
        pair = self.copy_of(tenant_id, adjustment_id)
        if pair is None:
            self.siblings.clear()
            self.parked.clear()
            self.guessed.clear()
            return
        self.repair(tenant_id, change(pair))

    async def cancel_netting(self, tenant_id: str, rid: UUID, remittance_id: UUID) -> Decimal:
        """A kept receivable's netting is cancelled in its kept money (the allocations are all there, so the sum is
        the ledger's); any other's in SQL."""
        row = (tenant_id, rid)
        if row in self.rows:
            await self.load_money([row])
            cancelled = ZERO
            for allocation in list(self.money[row].values()):
                if (
                    allocation.remittance_id == remittance_id
                    and allocation.kind == "netting"
                    and allocation.total > 0
                ):
                    cancelled += allocation.total
                    self.money[row][allocation.allocation_id] = replace(
                        allocation, to_interest=ZERO, to_principal=ZERO
                    )
                    self.moved.add((tenant_id, allocation.allocation_id))
            return cancelled
        await self.flush(ALLOCATIONS)
        cancelled = await super().cancel_netting(tenant_id, rid, remittance_id)
        self.forget_money_of((tenant_id, rid))
        return cancelled

    async def deferral_in(self, tenant_id: str, remittance_id: UUID, keys: list[str]) -> bool:
        known = self.deferrals.get((tenant_id, remittance_id))
        if known is None:
            await self.flush(PAIRS)
            return await super().deferral_in(tenant_id, remittance_id, keys)
        held = [
            frozenset(p.match_keys)
            for (t, _), p in self.new_pairs.items()
            if t == tenant_id and p.remittance_id == remittance_id and rows.deferral(p)
        ]
        return any(not named.isdisjoint(keys) for named in [*known, *held])

    async def lock_pair(self, tenant_id: str, adjustment_id: UUID) -> StoredPair | None:
        """A pair read ahead under lock (and kept current since) or saved by the batch, as the ledger has it
        now; any other from the ledger."""
        known = self.copy_of(tenant_id, adjustment_id) or self.new_pairs.get((tenant_id, adjustment_id))
        if known is None:
            await self.flush(PAIRS)
            known = await super().lock_pair(tenant_id, adjustment_id)
            if known is not None:
                self.remember([known])
        return None if known is None else self.placed([known])[0]
