"""Receivables, their keys and history as a batch keeps them: each receivable locked once and changed in
memory (by ``memory.rows``, the rules its statements follow), keys and history lines held back, lookups by key
answered from what the ledger said when first asked plus what the batch added since."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import OverpaymentDetected
from services.matching.domain import Balance, Candidate
from services.matching.memory import rows
from services.matching.records import Receivable
from services.matching.store.batch._state import KEYS, RECEIVABLES, BatchState


class BatchReceivables(BatchState):
    """Receivables, keys and history for one run of one batch."""

    async def lock_receivable(self, tenant_id: str, rid: UUID) -> Receivable | None:
        kept = self.rows.get((tenant_id, rid))
        if kept is not None or (tenant_id, rid) in self.absent:
            return kept
        row = await super().lock_receivable(tenant_id, rid)
        if row is not None:
            self.rows[tenant_id, rid] = row
        return row

    async def open_receivable(self, tenant_id: str, account: str, op: OverpaymentDetected) -> None:
        row = rows.opened(tenant_id, account, op)
        self.absent.discard((tenant_id, op.receivable_id))
        if (tenant_id, op.receivable_id) in self.rows or rows.refused(row):
            await self.flush()  # the database refuses it on this message, as it did
            await super().open_receivable(tenant_id, account, op)
            return
        self.rows[tenant_id, op.receivable_id] = row
        self.opened.append((tenant_id, op.receivable_id))

    async def note_facts(
        self,
        tenant_id: str,
        rid: UUID,
        duplicate: bool,
        original_payment_date: date | None,
        identified_on: date | None,
    ) -> None:
        kept = self.rows.get((tenant_id, rid))
        if kept is None:
            await super().note_facts(tenant_id, rid, duplicate, original_payment_date, identified_on)
            self.candidates.clear()  # a receivable changed in the ledger
        else:
            await self._change(rows.with_facts(kept, duplicate, original_payment_date, identified_on))

    async def grow(self, tenant_id: str, rid: UUID, principal: Decimal, determination_date: date) -> None:
        kept = self.rows.get((tenant_id, rid))
        if kept is None:
            await super().grow(tenant_id, rid, principal, determination_date)
            self.candidates.clear()  # a receivable changed in the ledger
        else:
            await self._change(rows.grown(kept, principal, determination_date))

    async def save_balance(self, tenant_id: str, rid: UUID, balance: Balance, status: str) -> None:
        kept = self.rows.get((tenant_id, rid))
        if kept is None:
            await super().save_balance(tenant_id, rid, balance, status)
            self.candidates.clear()  # a receivable changed in the ledger
        else:
            await self._change(rows.balanced(kept, balance, status))

    async def mark_written_off_in_full(self, tenant_id: str, rid: UUID, on: date) -> None:
        kept = self.rows.get((tenant_id, rid))
        if kept is None:
            await super().mark_written_off_in_full(tenant_id, rid, on)
            self.candidates.clear()  # a receivable changed in the ledger
        else:
            await self._change(rows.written_off_in_full(kept, on))

    async def _change(self, changed: Receivable) -> None:
        """Keep the changed row to write at the end. A change the database refuses is sent now, so the
        statement that fails is the message's that made it (and the kept row stays as it was)."""
        if rows.refused(changed):
            await self.flush()
            await self._write_receivables([changed], insert=False)
            return  # not reached while the check holds
        row = (changed.tenant_id, changed.receivable_id)
        self.rows[row] = changed
        self.changed.add(row)

    async def merge_into(self, tenant_id: str, absorbed: UUID, survivor: UUID, on: date) -> None:
        await self.flush()
        await super().merge_into(tenant_id, absorbed, survivor, on)
        # The merge moved allocations and keys and changed both rows in SQL: read them again (still locked).
        self.rows.pop((tenant_id, absorbed), None)
        self.rows.pop((tenant_id, survivor), None)
        self.named.clear()
        self.keys_of.clear()
        self.candidates.clear()
        await self.forget_money()

    async def add_keys(
        self, tenant_id: str, account: str, rid: UUID, keys: Sequence[tuple[str, str]]
    ) -> None:
        self.new_keys += [(tenant_id, account, kind, key, rid) for kind, key in keys]
        # The scored search compares a candidate's keys: a listed receivable is listed with its new ones too
        # (sorted as the ledger's array_agg orders them), as the ledger would answer once they are written.
        listed = self.candidates.get((tenant_id, account), []) if keys else []
        for at, candidate in enumerate(listed):
            if candidate.receivable_id == str(rid):
                listed[at] = replace(candidate, keys=tuple(sorted({*candidate.keys, *(k for _, k in keys)})))
                break

    async def receivable_keys(self, tenant_id: str, rid: UUID) -> list[str]:
        known = self.keys_of.get((tenant_id, rid))
        if known is None:
            known = self.keys_of[tenant_id, rid] = set(await super().receivable_keys(tenant_id, rid))
        pending = {k[3] for k in self.new_keys if k[0] == tenant_id and k[4] == rid}
        return sorted(known | pending)  # code point order is COLLATE "C" order

    async def resolve(
        self, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[UUID], str | None]:
        wanted = [(tenant_id, account, kind, key) for kind, key in candidates]
        await self.look_up(wanted)
        for k in wanted:
            ids = self.named[k] | {n[4] for n in self.new_keys if n[:4] == k}
            if ids:
                return sorted(ids), k[2]  # UUIDs order as PostgreSQL orders them (bytewise)
        return [], None

    async def open_candidates(self, tenant_id: str, account: str) -> list[Candidate]:
        """The ledger's answer (read once while the batch writes no receivable or key), with the batch's changes
        to the receivables it returned laid over it, and the receivables the batch opened or changed that it
        did not return (or whose determination date moved: the order) placed in it (:meth:`_placed`); when
        one cannot be placed, the question goes to the ledger after writing the receivables and keys."""
        found = self.candidates.get((tenant_id, account))
        if found is None:
            await self.flush(KEYS)
            found = self.candidates[tenant_id, account] = await super().open_candidates(tenant_id, account)
        mine = {
            row
            for row in (*self.changed, *self.opened)
            if row[0] == tenant_id and self.rows[row].account_key == account
        }
        listed: list[Candidate] = []
        for candidate in found:
            row = (tenant_id, UUID(candidate.receivable_id))
            kept = self.rows.get(row) if row in mine else None
            mine.discard(row)
            if kept is None:
                listed.append(candidate)
            elif kept.determination_date != candidate.determination_date:
                mine.add(row)
            elif candidate_now(kept):
                listed.append(replace(candidate, open_balance=kept.balance.open, principal=kept.principal))
        extra = sorted((self.rows[row] for row in mine if candidate_now(self.rows[row])), key=order)
        if any((tenant_id, r.receivable_id) not in self.keys_of for r in extra):
            await self._read_account_keys(tenant_id, account)
        placed = self._placed(tenant_id, listed, extra) if extra else listed
        if placed is None:
            await self.flush(RECEIVABLES, KEYS)  # a receivable opened here is scored by its keys too
            return await super().open_candidates(tenant_id, account)
        return placed

    async def _read_account_keys(self, tenant_id: str, account: str) -> None:
        """The keys of every receivable of the account the batch keeps and has not read the keys of, in one
        statement: the next one the batch reopens (a netting given back, say) needs none."""
        unread = [r for r, kept in self.rows.items() if r[0] == tenant_id and kept.account_key == account]
        await self.read_keys([r for r in unread if r not in self.keys_of])

    def _placed(
        self, tenant_id: str, listed: list[Candidate], extra: list[Receivable]
    ) -> list[Candidate] | None:
        """``listed`` (in the ledger's order) with ``extra`` (kept rows, in that order) inserted where the ledger
        would list them: by determination date, then reference and id, which the batch knows of a listed
        candidate only when it keeps its row (None when it does not: the ledger answers); with every key the
        ledger would aggregate (read before, with those the batch added)."""
        placed = list(listed)
        for row in extra:
            known = self.keys_of[tenant_id, row.receivable_id]
            pending = {k[3] for k in self.new_keys if k[0] == tenant_id and k[4] == row.receivable_id}
            at = 0
            while at < len(placed) and placed[at].determination_date <= row.determination_date:
                if placed[at].determination_date == row.determination_date:
                    other = self.rows.get((tenant_id, UUID(placed[at].receivable_id)))
                    if other is None:
                        return None
                    if order(other) > order(row):
                        break
                at += 1
            keys = tuple(sorted(known | pending))  # code point order is COLLATE "C" order
            placed.insert(
                at,
                Candidate(
                    str(row.receivable_id), keys, row.balance.open, row.principal, row.determination_date
                ),
            )
        return placed

    async def add_history(
        self,
        tenant_id: str,
        rid: UUID,
        event_id: UUID,
        change: str,
        amount: Decimal,
        effective: date,
        source: str,
        status: str,
        balance: Decimal,
    ) -> None:
        self.history.append((tenant_id, rid, event_id, change, amount, effective, source, status, balance))


def order(row: Receivable) -> tuple[date, str, UUID]:
    """Where ``open_candidates`` lists the receivable: ``ORDER BY determination_date, reference COLLATE "C",
    receivable_id`` (code point order is "C" order; UUIDs compare bytewise, as PostgreSQL compares them)."""
    return (row.determination_date, row.reference, row.receivable_id)


def candidate_now(row: Receivable) -> bool:
    """Whether ``open_candidates`` returns the receivable as it stands: live, not paused, still owed."""
    return not row.paused and row.merged_into is None and row.balance.open > 0
