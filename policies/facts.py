"""The facts about a receivable's money that payer policies reason over: its recovery history by business date,
appeal pauses, extended repayment schedules, rate tables and the interest terms a policy grants.

They sit in ``policies`` because the policy interface speaks them (``PayerPolicy.interest_terms`` receives a
:class:`History` and answers :class:`InterestTerms`); the interest stage's closed form (``services.interest.domain``)
and the staff views build on them. Plain frozen values and pure functions, no I/O beyond reading a rate file.
"""

import calendar
import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from contracts.money import ZERO

REDUCTIONS = frozenset({"ReceivableReduced", "ReceivableSettled"})


class RateTable:
    """Annual rates by effective date, read from a data file so a new quarterly rate is data, not code."""

    def __init__(self, rows: Iterable[tuple[date, Decimal]]) -> None:
        self._rows = sorted(rows)
        if not self._rows:
            raise ValueError("rate table is empty")

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


@dataclass(frozen=True)
class Movement:
    """Money recovered by one change, dated by its business date (deltas, so arrival order stops mattering)."""

    key: str
    effective: date
    event_type: str
    principal: Decimal
    interest: Decimal

    @property
    def total(self) -> Decimal:
        """Principal and interest recovered together (what an ERS installment is measured against)."""
        return self.principal + self.interest


@dataclass(frozen=True)
class Pause:
    """Recoupment paused by a timely appeal, from ``start`` until ``end`` (exclusive; None = still paused)."""

    start: date
    end: date | None

    def covers(self, day: date) -> bool:
        """Whether recoupment on ``day`` falls inside the pause."""
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class History:
    """A receivable's principal and every recovery by business date: the input of the closed form."""

    principal: Decimal
    movements: tuple[Movement, ...]
    pauses: tuple[Pause, ...]
    write_offs: tuple[tuple[date, Decimal], ...] = ()
    """(effective date, amount) of every write-off: money no longer owed, though never recovered."""

    def outstanding_on(self, day: date) -> Decimal:
        """Principal still owed at the end of ``day``.

        The principal is the receivable's whole principal from day 0: a later letter or merged evidence
        describes the same determination, so it is owed from the determination date, not from when we heard.
        A write-off lowers it like a recovery (matching counts written-off money against principal too), so
        an appeal the provider won or a balance staff closed stops accruing interest from that day.
        """
        recovered = sum((m.principal for m in self.movements if m.effective <= day), ZERO)
        written_off = sum((amount for effective, amount in self.write_offs if effective <= day), ZERO)
        return max(self.principal - recovered - written_off, ZERO)

    def recoupments(self) -> list[Movement]:
        """Recoveries reported as reductions, in business-date order."""
        return [m for m in self.movements if m.event_type in REDUCTIONS and m.total > 0]

    def paused_on(self, day: date) -> bool:
        """Whether an appeal pause covers ``day``."""
        return any(p.covers(day) for p in self.pauses)


Frequency = Literal["monthly", "biweekly", "weekly"]


InstallmentStatus = Literal["paid", "missed", "open"]


@dataclass(frozen=True)
class ErsPlan:
    """An extended repayment schedule: installments (due date, amount) granted on ``granted_on``."""

    granted_on: date
    installments: tuple[tuple[date, Decimal], ...]


def add_months(start: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (24 months after 29 Feb is 28 Feb)."""
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    return date(year, month + 1, min(start.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class InstallmentState:
    """One installment judged against the payments: ``paid`` is the money counted toward it; ``open`` means
    not yet due (as of the judging date) and not yet covered."""

    due: date
    amount: Decimal
    paid: Decimal
    status: InstallmentStatus


def ers_installments(
    plan: ErsPlan, payments: Sequence[Movement], as_of: date | None = None
) -> list[InstallmentState]:
    """Each installment paid, missed or still open.

    An installment is met when what was paid in its window (since the previous due date, or since the grant
    for the first), plus any earlier overpayment, covers it; it is missed once its due date is before
    ``as_of`` (every unmet one is missed when ``as_of`` is None: the closed form over a final history).
    """
    states: list[InstallmentState] = []
    carry, window_start = ZERO, plan.granted_on
    for due, amount in sorted(plan.installments):
        available = carry + sum((m.total for m in payments if window_start <= m.effective <= due), ZERO)
        if available >= amount:
            states.append(InstallmentState(due, amount, amount, "paid"))
            carry = available - amount
        else:
            status: InstallmentStatus = "open" if as_of is not None and due >= as_of else "missed"
            states.append(InstallmentState(due, amount, available, status))
            carry = ZERO
        window_start = due + timedelta(days=1)
    return states


def ers_default_date(plan: ErsPlan, payments: Sequence[Movement], as_of: date | None = None) -> date | None:
    """The day the rate stops being fixed: the day after the second missed installment, else None.

    With ``as_of`` only installments due before it can be missed, so a default is never announced for a
    date still to come.
    """
    missed = [s for s in ers_installments(plan, payments, as_of) if s.status == "missed"]
    return missed[1].due + timedelta(days=1) if len(missed) >= 2 else None


@dataclass(frozen=True)
class InterestTerms:
    """How a policy charges interest on one receivable.

    ``rerate`` is (from date, rate): periods due on or after the date use that rate (an ERS in default whose
    current rate is higher); before it the rate locked at the determination date applies.
    """

    annual_rate: Decimal
    partial_period_as_full: bool = False
    rerate: tuple[date, Decimal] | None = None

    def rate_for(self, due: date) -> Decimal:
        """The rate of a period charged on ``due``."""
        if self.rerate is not None and due >= self.rerate[0]:
            return max(self.annual_rate, self.rerate[1])
        return self.annual_rate
