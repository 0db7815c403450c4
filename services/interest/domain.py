"""Interest's pure domain: which interest periods have come due, and what each costs.

Medicare (42 CFR 405.378): simple interest on the outstanding principal for each full 30-day period the debt
stays unpaid after the determination date; period *n* covers days 30(n−1)+1 … 30n and is charged on day 30n+1
(so the first charge is on day 31). Per period: principal × annual rate × 30/360, rounded half-up to the cent;
the rate is the one in force on the determination date. No new interest once principal is 0.
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from contracts.money import CENT

PERIOD_DAYS = 30


@dataclass(frozen=True)
class Period:
    """One accrued interest period."""

    number: int
    start: date
    end: date
    basis: Decimal
    rate: Decimal
    amount: Decimal


class RateTable:
    """Annual rates by effective date, read from a data file so a new quarterly rate is data, not code."""

    def __init__(self, rows: list[tuple[date, Decimal]]) -> None:
        if not rows:
            raise ValueError("rate table is empty")
        self._rows = sorted(rows)

    @classmethod
    def from_csv(cls, path: Path) -> "RateTable":
        """Read ``effective_date,annual_rate`` rows (rate as a decimal fraction)."""
        with path.open(newline="") as handle:
            rows = [
                (date.fromisoformat(r["effective_date"]), Decimal(r["annual_rate"]))
                for r in csv.DictReader(handle)
            ]
        return cls(rows)

    def rate_on(self, day: date) -> Decimal:
        """The rate in force on ``day``; before the first entry is an error, not a silent zero."""
        applicable = [rate for effective, rate in self._rows if effective <= day]
        if not applicable:
            raise ValueError(f"no interest rate in force on {day.isoformat()}")
        return applicable[-1]


def period_interest(basis: Decimal, annual_rate: Decimal) -> Decimal:
    """Interest of one 30-day period: basis × rate × 30/360, ROUND_HALF_UP to the cent."""
    return (basis * annual_rate * PERIOD_DAYS / 360).quantize(CENT, rounding=ROUND_HALF_UP)


def due_periods(
    determination: date,
    through: date,
    outstanding_on: Callable[[date], Decimal],
    annual_rate: Decimal,
    *,
    first_period: int = 1,
) -> list[Period]:
    """Every period from ``first_period`` whose charge day (30n+1) is on or before ``through``.

    ``outstanding_on(day)`` gives the principal still owed at the end of ``day``. Stops at the first period
    whose basis is zero: once principal is paid off no new interest accrues.
    """
    periods: list[Period] = []
    number = first_period
    while True:
        end = determination + timedelta(days=PERIOD_DAYS * number)
        if end + timedelta(days=1) > through:
            return periods
        basis = outstanding_on(end)
        if basis <= 0:
            return periods
        start = end - timedelta(days=PERIOD_DAYS - 1)
        periods.append(Period(number, start, end, basis, annual_rate, period_interest(basis, annual_rate)))
        number += 1


def outstanding_from_history(history: list[tuple[date, Decimal]]) -> Callable[[date], Decimal]:
    """A step function over (effective date, outstanding principal) records in the order they happened."""

    def outstanding_on(day: date) -> Decimal:
        value = Decimal("0.00")
        for effective, outstanding in history:
            if effective <= day:
                value = outstanding
        return value

    return outstanding_on
