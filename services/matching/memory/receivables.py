"""Receivables, their identifiers and history, in memory (as ``store.receivables``)."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import OverpaymentDetected
from contracts.money import ZERO
from services.matching.domain import Balance, Candidate
from services.matching.memory import rows
from services.matching.memory._tables import HistoryLine, Tables, cents, least
from services.matching.records import Receivable


class MemReceivables(Tables):
    """Receivables, keys and history."""

    async def lock_receivable(self, tenant_id: str, rid: UUID) -> Receivable | None:
        return self.receivables.get((tenant_id, rid))

    async def open_receivable(self, tenant_id: str, account: str, op: OverpaymentDetected) -> None:
        if (tenant_id, op.receivable_id) in self.receivables:
            raise KeyError(f"receivable {op.receivable_id} exists (primary key)")
        self.receivables[tenant_id, op.receivable_id] = rows.opened(tenant_id, account, op)

    async def note_facts(
        self,
        tenant_id: str,
        rid: UUID,
        duplicate: bool,
        original_payment_date: date | None,
        identified_on: date | None,
    ) -> None:
        row = self.receivables.get((tenant_id, rid))
        if row is not None:
            self._replace(rows.with_facts(row, duplicate, original_payment_date, identified_on))

    async def grow(self, tenant_id: str, rid: UUID, principal: Decimal, determination_date: date) -> None:
        row = self.receivables.get((tenant_id, rid))
        if row is not None:
            self._replace(rows.grown(row, principal, determination_date))

    async def add_keys(
        self, tenant_id: str, account: str, rid: UUID, keys: Sequence[tuple[str, str]]
    ) -> None:
        for kind, key in keys:
            self.keys[tenant_id, account, kind, key, rid] = None

    async def receivable_keys(self, tenant_id: str, rid: UUID) -> list[str]:
        return sorted({k[3] for k in self.keys if k[0] == tenant_id and k[4] == rid})

    async def resolve(
        self, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[UUID], str | None]:
        for kind, key in candidates:
            ids = [k[4] for k in self.keys if k[:4] == (tenant_id, account, kind, key)]
            if ids:
                return sorted(set(ids)), kind
        return [], None

    async def find_by_key(self, tenant_id: str, payer_id: str, key: str) -> list[UUID]:
        found: list[UUID] = []
        for t, _, kind, k, rid in self.keys:
            row = self.receivables.get((t, rid))
            if (
                t == tenant_id
                and k == key
                and kind in ("reference", "icn")
                and row is not None
                and row.payer_id == payer_id
                and row.merged_into is None
            ):
                found.append(rid)
        return sorted(set(found))

    async def open_candidates(self, tenant_id: str, account: str) -> list[Candidate]:
        rows = [
            r
            for r in self.receivables.values()
            if r.tenant_id == tenant_id
            and r.account_key == account
            and not r.paused
            and r.merged_into is None
            and r.balance.open > 0
        ]
        rows.sort(key=lambda r: (r.determination_date, r.reference, r.receivable_id))
        return [
            Candidate(
                str(r.receivable_id),
                tuple(sorted({k[3] for k in self.keys if k[0] == tenant_id and k[4] == r.receivable_id})),
                r.balance.open,
                r.principal,
                r.determination_date,
            )
            for r in rows
        ]

    async def save_balance(self, tenant_id: str, rid: UUID, balance: Balance, status: str) -> None:
        row = self.receivables.get((tenant_id, rid))
        if row is not None:
            self._replace(rows.balanced(row, balance, status))

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
        self.history.setdefault(
            (tenant_id, event_id),
            HistoryLine(
                tenant_id, rid, event_id, change, cents(amount), effective, source, status, cents(balance)
            ),
        )

    async def latest_business_date(self, tenant_id: str, rids: Sequence[UUID]) -> date | None:
        days = [
            h.effective_date
            for h in self.history.values()
            if h.tenant_id == tenant_id and h.receivable_id in rids
        ]
        return max(days, default=None)

    async def merge_into(self, tenant_id: str, absorbed: UUID, survivor: UUID, on: date) -> None:
        for key, allocation in list(self.allocations.items()):
            if key[0] == tenant_id and allocation.receivable_id == absorbed:
                self.allocations[key] = replace(allocation, receivable_id=survivor)
        for t, account, kind, k, rid in list(self.keys):
            if t == tenant_id and rid == absorbed:
                self.keys[t, account, kind, k, survivor] = None
                del self.keys[t, account, kind, k, rid]
        gone = self.receivables.get((tenant_id, absorbed))
        keep = self.receivables.get((tenant_id, survivor))
        if gone is not None and keep is not None:
            self._update(
                tenant_id,
                survivor,
                written_off=keep.written_off + gone.written_off,
                paused=keep.paused or gone.paused,
                duplicate=keep.duplicate or gone.duplicate,
                original_payment_date=least(keep.original_payment_date, gone.original_payment_date),
                identified_on=least(keep.identified_on, gone.identified_on),
            )
        self._update(
            tenant_id,
            absorbed,
            merged_into=survivor,
            merged_on=on,
            principal=ZERO,
            written_off=ZERO,
            principal_recovered=ZERO,
            interest_recovered=ZERO,
            refunded=ZERO,
            paused=False,
            status="merged",
        )

    async def mark_written_off_in_full(self, tenant_id: str, rid: UUID, on: date) -> None:
        row = self.receivables.get((tenant_id, rid))
        if row is not None:
            self._replace(rows.written_off_in_full(row, on))
