"""The in-memory ledger's tables: one dictionary per ``matching`` table, keyed like its primary key, holding
frozen rows that writes replace; and the PostgreSQL behaviours the queries rely on (LEAST/GREATEST ignoring
NULLs, ``btrim``, ``numeric(14,2)``)."""

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from itertools import count
from uuid import UUID

from contracts.money import ZERO
from services.matching.records import (
    ForwardingBalance,
    Receivable,
    RefundCredit,
    StoredPair,
)
from services.matching.repository import Wanted

CENT = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    """An amount as a ``numeric(14,2)`` column stores it."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def least(a: date | None, b: date | None) -> date | None:
    """PostgreSQL's LEAST: the smaller date, NULLs ignored."""
    known = [d for d in (a, b) if d is not None]
    return min(known) if known else None


def greatest(a: date | None, b: date | None) -> date | None:
    """PostgreSQL's GREATEST: the larger date, NULLs ignored."""
    known = [d for d in (a, b) if d is not None]
    return max(known) if known else None


def trimmed(reference: str | None) -> str | None:
    """``NULLIF(btrim(reference), '')``."""
    return (reference or "").strip(" ") or None


@dataclass(frozen=True)
class AllocationRow:
    """One ``matching.allocations`` row."""

    tenant_id: str
    allocation_id: UUID
    adjustment_id: UUID
    receivable_id: UUID
    to_interest: Decimal
    to_principal: Decimal
    effective_date: date
    kind: str
    remittance_id: UUID | None

    @property
    def total(self) -> Decimal:
        """What the allocation applies."""
        return self.to_interest + self.to_principal


@dataclass(frozen=True)
class HistoryLine:
    """One ``matching.receivable_history`` row."""

    tenant_id: str
    receivable_id: UUID
    event_id: UUID
    change: str
    amount: Decimal
    effective_date: date
    source: str
    status: str
    balance: Decimal


@dataclass(frozen=True)
class InterestCharge:
    """One ``matching.interest_charges`` row."""

    receivable_id: UUID
    amount: Decimal
    due_date: date
    period_number: int | None = None
    held: bool = False


@dataclass(frozen=True)
class PendingAction:
    """One ``matching.pending_actions`` row (``received`` orders arrivals, as ``received_at`` does)."""

    action_id: UUID
    account_key: str
    payer_id: str
    reference: str
    effective_date: date
    envelope: bytes
    received: int


class BalanceNegative(Exception):
    """The in-memory twin of PostgreSQL's ``receivable_balance_not_negative`` check: a write that would leave a
    receivable owing less than nothing is refused, as the database refuses it (the service dead-letters the
    input), so a unit test sees the same failure."""


class Tables:
    """Matching's tables as dictionaries; the repository's parts (one per table group) share them."""

    def __init__(self) -> None:
        self.receivables: dict[tuple[str, UUID], Receivable] = {}
        self.keys: dict[tuple[str, str, str, str, UUID], None] = {}
        """(tenant, account, kind, key, receivable) → None: an ordered set."""
        self.history: dict[tuple[str, UUID], HistoryLine] = {}
        self.pairs: dict[tuple[str, UUID], StoredPair] = {}
        self.allocations: dict[tuple[str, UUID], AllocationRow] = {}
        self.charges: dict[tuple[str, UUID], InterestCharge] = {}
        self.forwardings: dict[tuple[str, str, str], ForwardingBalance] = {}
        self.pending: dict[tuple[str, UUID], PendingAction] = {}
        self.credits: dict[tuple[str, UUID], RefundCredit] = {}
        self._arrivals = count()

    async def prefetch(self, wanted: Wanted) -> None:
        """Nothing to read ahead: the dictionaries are the ledger."""

    async def flush(self) -> None:
        """Nothing to write: the dictionaries are the ledger."""

    def _update(self, tenant_id: str, rid: UUID, **changes: object) -> None:
        row = self.receivables.get((tenant_id, rid))
        if row is not None:
            self._replace(replace(row, **changes))  # type: ignore[arg-type]

    def _replace(self, changed: Receivable) -> None:
        """Store a changed receivable row, refused as ``receivable_balance_not_negative`` refuses it."""
        if changed.balance.open < 0:  # see rows.refused
            raise BalanceNegative(
                f"receivable {changed.receivable_id} would owe {changed.balance.open}: "
                "receivable_balance_not_negative (migration 0004) refuses it"
            )
        self.receivables[changed.tenant_id, changed.receivable_id] = changed

    def _tenant_pairs(self, tenant_id: str) -> list[StoredPair]:
        return [p for (t, _), p in self.pairs.items() if t == tenant_id]

    def _set_pair(self, tenant_id: str, adjustment_id: UUID, **changes: object) -> StoredPair | None:
        pair = self.pairs.get((tenant_id, adjustment_id))
        if pair is None:
            return None
        changed = replace(pair, **changes)  # type: ignore[arg-type]
        self.pairs[tenant_id, adjustment_id] = changed
        return changed

    def _allocations_of(self, tenant_id: str, rid: UUID) -> list[AllocationRow]:
        return [a for (t, _), a in self.allocations.items() if t == tenant_id and a.receivable_id == rid]

    def _charged(self, tenant_id: str, rid: UUID) -> Decimal:
        return sum(
            (
                c.amount
                for (t, _), c in self.charges.items()
                if t == tenant_id and c.receivable_id == rid and not c.held
            ),
            ZERO,
        )

    def _positive_fbs(self, tenant_id: str, account: str) -> list[StoredPair]:
        return [
            p
            for p in self._tenant_pairs(tenant_id)
            if p.account_key == account and p.reason_code == "FB" and p.amount > 0
        ]
