"""A write-off (an appeal the provider won, or staff closing a balance) ends the debt: no interest after it.

DOMAIN.md §3: interest is charged on the *outstanding principal*, and none once principal is 0. Matching
reports a write-off as a ``ReceivableWrittenOff`` change that recovers nothing (its running recovered totals
stay put); a write-off must stop accrual exactly as a recovery of the same amount would.
"""

from datetime import date, timedelta
from decimal import Decimal

from policies.facts import InterestTerms
from services.interest.domain import Change, history_from_changes, next_due, schedule

D = Decimal
DET = date(2026, 1, 1)
TERMS = InterestTerms(D("0.115"))  # 1000.00 → 9.58 a period


def change(key: str, day: int, event: str, status: str, amount: str, recovered: str = "0.00") -> Change:
    return Change(
        key, DET + timedelta(days=day), event, status, D(amount), D("1000.00"), D(recovered), D("0.00")
    )


def test_an_overturned_appeal_written_off_on_day_45_stops_interest_after_period_1() -> None:
    changes = [
        change("opened", 0, "ReceivableOpened", "open", "1000.00"),
        change("interest", 31, "InterestAdded", "open", "9.58"),
        change("off", 45, "ReceivableWrittenOff", "written_off", "1009.58"),
    ]
    history = history_from_changes(D("1000.00"), changes, [])
    periods = schedule(DET, history, TERMS, DET + timedelta(days=400))
    assert [(p.number, p.amount) for p in periods] == [(1, D("9.58"))]
    assert next_due(DET, history, TERMS, DET + timedelta(days=45)) is None


def test_a_partial_write_off_lowers_the_basis_of_later_periods() -> None:
    changes = [
        change("opened", 0, "ReceivableOpened", "open", "1000.00"),
        change("off", 10, "ReceivableWrittenOff", "open", "400.00"),
    ]
    history = history_from_changes(D("1000.00"), changes, [])
    [first, second] = schedule(DET, history, TERMS, DET + timedelta(days=61))
    assert (first.basis, second.basis) == (D("600.00"), D("600.00"))
    assert first.amount == D("5.75")  # 600 × 0.115 × 30/360


def test_a_refund_that_closes_a_partly_written_off_receivable_is_not_counted_twice() -> None:
    # Matching names that change ReceivableWrittenOff too (its status is written_off), but its money is a
    # recovery already in the dated schedule: only the pure write-off reduces the basis again.
    changes = [
        change("opened", 0, "ReceivableOpened", "open", "1000.00"),
        change("off", 10, "ReceivableWrittenOff", "open", "100.00"),
        change("refund", 20, "ReceivableWrittenOff", "written_off", "900.00", recovered="900.00"),
    ]
    schedule_rows = [(DET + timedelta(days=20), D("0.00"), D("900.00"), "refund")]
    history = history_from_changes(D("1000.00"), changes, schedule_rows)
    assert history.outstanding_on(DET + timedelta(days=15)) == D("900.00")
    assert history.outstanding_on(DET + timedelta(days=20)) == D("0.00")
    assert [m.principal for m in history.movements] == [D("900.00")]


def test_a_write_off_mid_period_under_the_partial_period_option_charges_nothing_for_it() -> None:
    # The option counts a started period as full when the debt is *paid* during it; a write-off is not a
    # payment (and used to crash the search for the payoff day).
    changes = [
        change("opened", 0, "ReceivableOpened", "open", "1000.00"),
        change("off", 45, "ReceivableWrittenOff", "written_off", "1009.58"),
    ]
    history = history_from_changes(D("1000.00"), changes, [])
    terms = InterestTerms(D("0.115"), partial_period_as_full=True)
    periods = schedule(DET, history, terms, DET + timedelta(days=400))
    assert [(p.number, p.amount) for p in periods] == [(1, D("9.58"))]
