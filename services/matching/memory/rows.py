"""How each write of the repository port changes a ``matching.receivables`` row, as its SQL statement would
(``numeric(14,2)`` rounding, LEAST/GREATEST ignoring NULLs, a merged receivable keeping status ``merged``).

Shared by the two places that keep receivables in Python: the in-memory repository (this package) and the
PostgreSQL repository of a batch (``store.batch``), which changes the rows it locked in memory and writes each
once when the batch ends. One rule for both, so that what the batch writes is what the statements it saves
would have written (and the parity test of the two repositories checks the batch's too).
"""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from contracts.events import OverpaymentDetected
from contracts.money import ZERO
from services.matching.domain import Balance
from services.matching.memory._tables import cents, greatest, least
from services.matching.records import Receivable


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
