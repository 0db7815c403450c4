"""What one input does to a receivable row and its repayment plan (``services.interest.ledger``), in pure code:
the rules the SQL upserts used to carry, now decided before the batch's single write."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from contracts.events import ReceivableChanged
from policies.facts import ErsPlan
from services.interest.ledger import opened, plan_replaces, updated
from shared.ids import receivable_id

D = Decimal
RID = receivable_id("clinic", "01312", "FCN-1")


def change(**given: object) -> ReceivableChanged:
    fields: dict[str, object] = {
        "receivable_id": RID,
        "payer_id": "01312",
        "reference": "FCN-1",
        "status": "open",
        "policy": "medicare",
        "determination_date": date(2026, 1, 1),
        "effective_date": date(2026, 1, 1),
        "change_amount": D("100.00"),
        "principal": D("100.00"),
        "principal_recovered": D("0.00"),
        "interest_accrued": D("0.00"),
        "interest_recovered": D("0.00"),
        "balance": D("100.00"),
        "source": "test",
    }
    return ReceivableChanged.model_validate(fields | given)


def test_a_change_keeps_the_earliest_dates_and_any_duplicate_flag_seen() -> None:
    first = change(original_payment_date=date(2025, 6, 1), duplicate=True)
    row = updated(opened("clinic", "acct", first), first)
    later = change(
        principal_recovered=D("40.00"), status="partially_recovered", original_payment_date=date(2025, 7, 1)
    )
    row = updated(row, later)
    assert (row.paid_on, row.duplicate, row.principal_recovered) == (date(2025, 6, 1), True, D("40.00"))
    assert row.recovery_schedule is None and row.account_key == "acct"


def test_a_change_without_a_recovery_split_keeps_the_one_before() -> None:
    row = replace(
        opened("clinic", "acct", change()),
        recovery_schedule=((date(2026, 2, 1), D("1.00"), D("9.00"), "offset"),),
    )
    assert updated(row, change()).recovery_schedule == row.recovery_schedule


def test_a_repayment_plan_is_replaced_by_a_later_or_corrected_grant_only() -> None:
    plan = ErsPlan(date(2026, 3, 1), ((date(2026, 4, 1), D("50.00")), (date(2026, 5, 1), D("50.00"))))
    corrected = ErsPlan(date(2026, 3, 1), ((date(2026, 4, 1), D("60.00")), (date(2026, 5, 1), D("40.00"))))
    older = ErsPlan(date(2026, 2, 1), corrected.installments)
    assert plan_replaces(plan, None)
    assert not plan_replaces(plan, plan)  # the same grant again changes nothing
    assert plan_replaces(corrected, plan)  # same day, other installments
    assert not plan_replaces(older, plan)  # an older grant arriving late
