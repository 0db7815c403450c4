"""Medicare interest math, hand-computed to the cent (DOMAIN.md §3)."""

from datetime import date
from decimal import Decimal

import pytest

from services.interest.domain import RateTable, due_periods, outstanding_from_history, period_interest
from services.interest.policies import MedicarePolicy

D = Decimal


def test_period_interest_rounds_half_up() -> None:
    # 300 × 0.115 × 30/360 = 2.875 → 2.88 (half-up, not banker's 2.88/2.87)
    assert period_interest(D("300.00"), D("0.115")) == D("2.88")
    # 75 × 0.115 / 12 = 0.71875 → 0.72
    assert period_interest(D("75.00"), D("0.115")) == D("0.72")
    # 1000 × 0.1 / 12 = 8.3333 → 8.33
    assert period_interest(D("1000.00"), D("0.10")) == D("8.33")


def test_first_period_is_charged_on_day_31_not_30() -> None:
    det = date(2026, 8, 3)
    owed = outstanding_from_history([(det, D("300.00"))])
    assert due_periods(det, date(2026, 9, 2), owed, D("0.115")) == []  # day 30
    [period] = due_periods(det, date(2026, 9, 3), owed, D("0.115"))  # day 31
    assert (period.number, period.start, period.end, period.amount) == (
        1, date(2026, 8, 4), date(2026, 9, 2), D("2.88"))


def test_partial_recovery_mid_period_lowers_the_next_basis() -> None:
    det = date(2026, 1, 1)
    owed = outstanding_from_history([(det, D("1000.00")), (date(2026, 2, 15), D("400.00"))])
    periods = due_periods(det, date(2026, 4, 15), owed, D("0.10"))
    assert [(p.number, p.basis, p.amount) for p in periods] == [
        (1, D("1000.00"), D("8.33")), (2, D("400.00"), D("3.33")), (3, D("400.00"), D("3.33"))]


def test_no_interest_once_principal_is_paid() -> None:
    det = date(2026, 1, 1)
    owed = outstanding_from_history([(det, D("500.00")), (date(2026, 1, 20), D("0.00"))])
    assert due_periods(det, date(2026, 12, 31), owed, D("0.10")) == []


def test_rate_is_the_one_in_force_on_the_determination_date() -> None:
    policy = MedicarePolicy()
    assert policy.annual_rate(date(2017, 4, 17)) == D("0.09750")
    assert policy.annual_rate(date(2017, 4, 18)) == D("0.10000")
    assert policy.annual_rate(date(2026, 8, 3)) == D("0.11500")
    with pytest.raises(ValueError, match="no interest rate"):
        RateTable([(date(2015, 1, 21), D("0.105"))]).rate_on(date(2014, 12, 31))
