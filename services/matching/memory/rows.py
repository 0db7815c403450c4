"""How each write of the repository port changes a ``matching.receivables`` row, as its SQL statement would
(``numeric(14,2)`` rounding, LEAST/GREATEST ignoring NULLs, a merged receivable keeping status ``merged``), and
what the money queries of ``store.money`` compute from a receivable's allocations.

Shared by the two places that keep receivables in Python: the in-memory repository (this package) and the
PostgreSQL repository of a batch (``store.batch``), which changes the rows it locked in memory and writes each
once when the batch ends. One rule for both, so that what the batch writes is what the statements it saves
would have written (and the parity test of the two repositories checks the batch's too).
"""

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import OverpaymentDetected, ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching.domain import Balance
from services.matching.memory._tables import AllocationRow, cents, greatest, least
from services.matching.records import Receivable, RecoveredTotals, ScheduledRecovery, StoredPair


def opened(tenant_id: str, account: str, op: OverpaymentDetected) -> Receivable:
    """The row ``open_receivable`` inserts (status ``open``, nothing recovered yet)."""
    return Receivable(
        tenant_id=tenant_id,
        receivable_id=op.receivable_id,
        account_key=account,
        payer_id=op.payer_id,
        reference=op.reference,
        policy=op.policy,
        determination_date=op.determination_date,
        principal=cents(op.principal),
        principal_recovered=ZERO,
        interest_accrued=ZERO,
        interest_recovered=ZERO,
        refunded=ZERO,
        written_off=ZERO,
        paused=False,
        status="open",
        original_payment_date=op.original_payment_date,
        duplicate=op.duplicate,
        identified_on=op.identified_on,
        merged_into=None,
        merged_on=None,
        written_off_in_full=None,
    )


def with_facts(
    row: Receivable, duplicate: bool, original_payment_date: date | None, identified_on: date | None
) -> Receivable:
    """``note_facts``: duplicate once seen, the earliest dates known."""
    return replace(
        row,
        duplicate=row.duplicate or duplicate,
        original_payment_date=least(row.original_payment_date, original_payment_date),
        identified_on=least(row.identified_on, identified_on),
    )


def grown(row: Receivable, principal: Decimal, determination_date: date) -> Receivable:
    """``grow``: the principal never lowered, day 0 moved."""
    return replace(row, principal=max(row.principal, cents(principal)), determination_date=determination_date)


def balanced(row: Receivable, balance: Balance, status: str) -> Receivable:
    """``save_balance``: the new totals (a merged receivable keeps status ``merged``)."""
    return replace(
        row,
        principal_recovered=cents(balance.principal_recovered),
        interest_accrued=cents(balance.interest_accrued),
        interest_recovered=cents(balance.interest_recovered),
        refunded=cents(balance.refunded),
        written_off=cents(balance.written_off),
        paused=balance.paused,
        status=status if row.merged_into is None else "merged",
    )


def written_off_in_full(row: Receivable, on: date) -> Receivable:
    """``mark_written_off_in_full``: the latest date the whole open balance was written off."""
    return replace(row, written_off_in_full=greatest(row.written_off_in_full, on))


def refused(row: Receivable) -> bool:
    """Whether ``receivable_balance_not_negative`` (migration 0004) refuses the row: it owes less than nothing."""
    return row.balance.open < 0


def rank(allocation: AllocationRow, pair: tuple[str, int, int] | None) -> str:
    """``store.money``'s ``RANK`` of a recovery, given its pair's (TRN02, PLB position, pair index), None when
    no pair of that id is stored (staff's money, or a pair whose own message has not finished)."""
    if allocation.kind == "netting":
        return "0"
    if pair is None:
        return "2"
    trace, ordinal, index = pair
    return f"1 {trace.strip(' ')} {ordinal:06d} {index:03d}"


def schedule(allocations: Iterable[AllocationRow]) -> list[ScheduledRecovery]:
    """``recovery_schedule``: recoveries summed per business date and kind, in date order, zero sums left out."""
    sums: dict[tuple[date, str], tuple[Decimal, Decimal]] = {}
    for a in allocations:
        interest, principal = sums.get((a.effective_date, a.kind), (ZERO, ZERO))
        sums[a.effective_date, a.kind] = (interest + a.to_interest, principal + a.to_principal)
    return [
        ScheduledRecovery(kind, day, interest, principal)
        for (day, kind), (interest, principal) in sorted(sums.items())
        if interest != 0 or principal != 0
    ]


def totals(allocations: Sequence[AllocationRow], charged: Decimal) -> RecoveredTotals:
    """``recovered_totals``: what the allocations recovered and refunded, and the interest ``charged``."""
    return RecoveredTotals(
        principal_recovered=sum((a.to_principal for a in allocations), ZERO),
        interest_recovered=sum((a.to_interest for a in allocations), ZERO),
        refunded=sum((a.total for a in allocations if a.kind == "refund"), ZERO),
        interest_accrued=charged,
    )


def stored_pair(
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
    method: str | None,
    suggestion: str | None,
) -> StoredPair:
    """The row ``save_adjustment`` inserts (nothing awaiting a refund yet)."""
    return StoredPair(
        tenant_id=tenant_id,
        adjustment_id=adjustment_id,
        account_key=account,
        remittance_id=adj.remittance_id,
        payer_id=adj.payer_id,
        trace_number=adj.trace_number,
        payment_date=adj.payment_date,
        segment_ordinal=adj.segment_ordinal,
        pair_index=adj.pair_index,
        reason_code=adj.reason_code,
        reference=adj.reference,
        match_reference=match_reference,
        amount=cents(adj.amount),
        bucket=bucket,
        unmatched_amount=cents(unmatched),
        reason=reason,
        match_keys=tuple(match_keys),
        match_method=method,
        suggestion=suggestion,
        awaiting_refund=ZERO,
    )


def unmatched_reduced(pair: StoredPair, remaining: Decimal, reason: str, bucket: str) -> StoredPair:
    """``reduce_unmatched``: ``remaining`` stays unmatched, re-explained; the pair moves to ``bucket`` when any
    of it was explained."""
    return replace(
        pair,
        unmatched_amount=cents(remaining),
        reason=reason,
        match_method="rematch",
        bucket=bucket if remaining < pair.amount else pair.bucket,
    )


def refund_awaited(pair: StoredPair, amount: Decimal, reason: str) -> StoredPair:
    """``await_refund``: ``amount`` of the unmatched money waits as an acknowledged refund."""
    return replace(
        pair,
        awaiting_refund=cents(pair.awaiting_refund + amount),
        unmatched_amount=cents(pair.unmatched_amount - amount),
        bucket="refund_acknowledged",
        reason=reason,
    )


def awaiting_reduced(pair: StoredPair, remaining: Decimal, reason: str) -> StoredPair:
    """``reduce_awaiting``: ``remaining`` still waits for its receivable."""
    return replace(pair, awaiting_refund=cents(remaining), reason=reason, match_method="rematch")


def acknowledged(pair: StoredPair, reason: str) -> StoredPair:
    """``reclassify_as_refund``'s change to the pair: the provider's refund acknowledged, re-explained."""
    return replace(pair, bucket="refund_acknowledged", reason=reason)


def parked(pair: StoredPair) -> bool:
    """Whether ``parked_recoveries`` may return the pair (before looking at its keys): a WO with money still
    unplaced or awaiting a refund."""
    return pair.reason_code == "WO" and (pair.unmatched_amount > 0 or pair.awaiting_refund > 0)


def deferral(pair: StoredPair) -> bool:
    """Whether ``deferral_in`` may find the pair (before looking at its keys): a negative WO."""
    return pair.reason_code == "WO" and pair.amount < 0


def parked_order(pair: StoredPair) -> tuple[date, str, int, int, UUID]:
    """Where ``parked_recoveries`` lists the pair: ``ORDER BY payment_date, btrim(trace_number) COLLATE "C",
    segment_ordinal, pair_index, adjustment_id`` (code point order is "C" order; UUIDs compare as PostgreSQL
    compares them)."""
    return (
        pair.payment_date,
        pair.trace_number.strip(" "),
        pair.segment_ordinal,
        pair.pair_index,
        pair.adjustment_id,
    )
