"""Medicare interest basics, hand-computed to the cent (DOMAIN.md §3)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from policies.facts import History, InterestTerms, Movement, Pause, RateTable
from policies.payers import MedicarePolicy
from services.interest.domain import Change, history_from_changes, next_due, period_interest, schedule

D = Decimal


def owed(principal: str, *recoveries: tuple[date, str]) -> History:
    """A history with the given principal and principal recoveries."""
    moves = tuple(
        Movement(f"r{i}", day, "ReceivableReduced", D(amount), D("0.00"))
        for i, (day, amount) in enumerate(recoveries)
    )
    return History(D(principal), moves, ())


def test_period_interest_rounds_half_up() -> None:
    # 300 × 0.115 × 30/360 = 2.875 → 2.88 (half-up, not banker's 2.88/2.87)
    assert period_interest(D("300.00"), D("0.115")) == D("2.88")
    # 75 × 0.115 / 12 = 0.71875 → 0.72
    assert period_interest(D("75.00"), D("0.115")) == D("0.72")
    # 1000 × 0.1 / 12 = 8.3333 → 8.33
    assert period_interest(D("1000.00"), D("0.10")) == D("8.33")


def test_first_period_is_charged_on_day_31_not_30() -> None:
    det = date(2026, 8, 3)
    terms = InterestTerms(D("0.115"))
    assert schedule(det, owed("300.00"), terms, date(2026, 9, 2)) == []  # day 30
    [period] = schedule(det, owed("300.00"), terms, date(2026, 9, 3))  # day 31
    assert (period.number, period.start, period.end, period.due, period.amount) == (
        1,
        date(2026, 8, 4),
        date(2026, 9, 2),
        date(2026, 9, 3),
        D("2.88"),
    )


def test_no_interest_once_principal_is_paid() -> None:
    det = date(2026, 1, 1)
    assert (
        schedule(
            det, owed("500.00", (date(2026, 1, 20), "500.00")), InterestTerms(D("0.10")), date(2026, 12, 31)
        )
        == []
    )


def test_principal_owed_again_accrues_again() -> None:
    # Paid on day 20, then the principal grows (merged evidence) to 900 while 500 is recovered: 400 owed.
    det = date(2026, 1, 1)
    periods = schedule(
        det, owed("900.00", (date(2026, 1, 20), "500.00")), InterestTerms(D("0.10")), date(2026, 2, 1)
    )
    assert [(p.basis, p.amount) for p in periods] == [(D("400.00"), D("3.33"))]


def test_rate_is_the_one_in_force_on_the_determination_date() -> None:
    policy = MedicarePolicy()
    assert policy.locked_rate(date(2017, 4, 17)) == D("0.09750")
    assert policy.locked_rate(date(2017, 4, 18)) == D("0.10000")
    assert policy.locked_rate(date(2026, 8, 3)) == D("0.11500")
    with pytest.raises(ValueError, match="no interest rate"):
        RateTable([(date(2015, 1, 21), D("0.105"))]).rate_on(date(2014, 12, 31))


def test_history_dates_each_recovery_by_its_own_business_date() -> None:
    # Matching applied a recovery dated 03-10 and then one dated 02-01 (a late file): running totals in
    # arrival order become deltas on their own dates, so the earlier recovery counts from 02-01.
    changes = [
        Change("a", date(2026, 1, 1), "ReceivableOpened", "open", D("1000"), D("1000"), D("0"), D("0")),
        Change(
            "b",
            date(2026, 3, 10),
            "ReceivableReduced",
            "partially_recovered",
            D("100"),
            D("1000"),
            D("100"),
            D("0"),
        ),
        Change(
            "c",
            date(2026, 2, 1),
            "ReceivableReduced",
            "partially_recovered",
            D("300"),
            D("1000"),
            D("400"),
            D("0"),
        ),
        Change(
            "d",
            date(2026, 2, 4),
            "InterestAdded",
            "partially_recovered",
            D("8.33"),
            D("1000"),
            D("400"),
            D("0"),
        ),
    ]
    history = history_from_changes(D("1000.00"), changes)
    assert [(m.key, m.effective, m.principal) for m in history.movements] == [
        ("c", date(2026, 2, 1), D("300")),
        ("b", date(2026, 3, 10), D("100")),
    ]
    assert history.outstanding_on(date(2026, 2, 1)) == D("700.00")
    assert history.outstanding_on(date(2026, 3, 10)) == D("600.00")


def test_pause_runs_from_paused_status_to_the_next_status_only_change() -> None:
    changes = [
        Change("a", date(2026, 1, 1), "ReceivableOpened", "open", D("500"), D("500"), D("0"), D("0")),
        Change("p", date(2026, 2, 1), "RecoupmentPaused", "paused", D("0"), D("500"), D("0"), D("0")),
        Change(
            "x",
            date(2026, 2, 20),
            "ReceivableReduced",
            "partially_recovered",
            D("50"),
            D("500"),
            D("50"),
            D("0"),
        ),
        Change(
            "i",
            date(2026, 3, 3),
            "InterestAdded",
            "partially_recovered",
            D("4.79"),
            D("500"),
            D("50"),
            D("0"),
        ),
        Change(
            "r",
            date(2026, 4, 1),
            "RecoupmentResumed",
            "partially_recovered",
            D("0"),
            D("500"),
            D("50"),
            D("0"),
        ),
    ]
    history = history_from_changes(D("500"), changes)
    assert history.pauses == (Pause(date(2026, 2, 1), date(2026, 4, 1)),)
    assert history.paused_on(date(2026, 2, 20)) and not history.paused_on(date(2026, 4, 1))


def test_next_due_is_the_next_charge_day_after_the_horizon() -> None:
    det, terms = date(2026, 1, 1), InterestTerms(D("0.10"))
    history = owed("100.00")
    assert next_due(det, history, terms, det) == det + timedelta(days=31)
    assert next_due(det, history, terms, det + timedelta(days=30)) == det + timedelta(days=31)
    assert next_due(det, history, terms, det + timedelta(days=31)) == det + timedelta(days=61)
    assert next_due(det, history, None, det) is None
    assert next_due(det, owed("100.00", (det, "100.00")), terms, det) is None


def test_a_period_no_longer_due_is_reversed_on_the_day_of_the_charge_it_reverses() -> None:
    """A letter moved day 0 from 2026-01-05 to 2026-01-08 after period 1 (due 2026-02-05) was charged: on
    2026-02-05 the period is no longer due, and its reversal is dated as the charge (due 2026-02-05), not by
    the new day 0 (2026-02-08, a day not reached yet, which matching would pass back as a business date)."""
    from services.interest.domain import Posted, reconcile

    posted = {1: Posted(1, Decimal("0.01"), 1, Decimal("0.115"), date(2026, 1, 6), date(2026, 2, 4))}
    [reversal] = reconcile(date(2026, 1, 8), [], posted)
    assert reversal.amount == Decimal("-0.01") and reversal.version == 2
    assert (reversal.period.start, reversal.period.end, reversal.period.due) == (
        date(2026, 1, 6),
        date(2026, 2, 4),
        date(2026, 2, 5),
    )
