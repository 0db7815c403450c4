"""Table-driven Medicare interest cases against hand-computed figures, to the cent.

Each row: determination date, principal, principal recoveries (day, amount), horizon, policy options, and the
expected (period, basis, amount) list. Rates come from the bundled table: 9.75 % from 2015-07-20, 10.00 % from
2017-04-18, 11.50 % from 2023-07-17. One period = basis × rate × 30/360, half-up.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.money import ZERO
from policies.facts import ErsPlan, History, InterestTerms, Movement, Pause, ers_default_date
from policies.payers import MedicarePolicy, ReceivableFacts
from services.interest.domain import Posted, reconcile, schedule

D = Decimal
J1 = date(2026, 1, 1)


def day(n: int, start: date = J1) -> date:
    return start + timedelta(days=n)


@dataclass(frozen=True)
class Case:
    name: str
    determination: date
    principal: str
    recoveries: tuple[tuple[date, str], ...]
    through: date
    expected: list[tuple[int, str, str]]
    options: dict[str, Any] = field(default_factory=dict)
    pauses: tuple[Pause, ...] = ()


CASES = [
    # Rate change between two receivables, one day apart: 1000 × 0.0975/12 = 8.125 → 8.13; × 0.10/12 → 8.33.
    Case(
        "rate 9.75% (determined 2017-04-17)",
        date(2017, 4, 17),
        "1000.00",
        (),
        day(91, date(2017, 4, 17)),
        [(1, "1000.00", "8.13"), (2, "1000.00", "8.13"), (3, "1000.00", "8.13")],
    ),
    Case(
        "rate 10.00% (determined 2017-04-18)",
        date(2017, 4, 18),
        "1000.00",
        (),
        day(91, date(2017, 4, 18)),
        [(1, "1000.00", "8.33"), (2, "1000.00", "8.33"), (3, "1000.00", "8.33")],
    ),
    # Partial recoveries mid-period: 500 on day 45, 300 on day 75; basis = principal owed on the period's last day.
    # 1200 × 0.115/12 = 11.50; 700 → 6.708 → 6.71; 400 → 3.833 → 3.83.
    Case(
        "partial recoveries mid-period",
        J1,
        "1200.00",
        ((day(45), "500.00"), (day(75), "300.00")),
        day(121),
        [(1, "1200.00", "11.50"), (2, "700.00", "6.71"), (3, "400.00", "3.83"), (4, "400.00", "3.83")],
    ),
    # Full payoff: paid by day 30 → nothing; on day 31 → period 1 only; on day 45 → period 1 only ...
    Case("paid on day 30", J1, "1000.00", ((day(30), "1000.00"),), day(400), []),
    Case("paid on day 31", J1, "1000.00", ((day(31), "1000.00"),), day(400), [(1, "1000.00", "9.58")]),
    Case("paid on day 45", J1, "1000.00", ((day(45), "1000.00"),), day(400), [(1, "1000.00", "9.58")]),
    # ... unless the contractor counts the started period as full: period 2 charged on the payoff day.
    Case(
        "paid on day 45, partial period as full",
        J1,
        "1000.00",
        ((day(45), "600.00"), (day(50), "400.00")),
        day(400),
        [(1, "1000.00", "9.58"), (2, "400.00", "3.83")],
        {"partial_period_as_full": True},
    ),
    # Appeal pause (day 35 to day 100): recoupment stops, interest does not. 600 × 0.115/12 = 5.75.
    Case(
        "appeal pause keeps accruing",
        J1,
        "600.00",
        (),
        day(121),
        [(1, "600.00", "5.75"), (2, "600.00", "5.75"), (3, "600.00", "5.75"), (4, "600.00", "5.75")],
        pauses=(Pause(day(35), day(100)),),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_medicare_interest(case: Case) -> None:
    policy = MedicarePolicy().configured(case.options)
    moves = tuple(
        Movement(f"r{i}", d, "ReceivableReduced", D(a), ZERO) for i, (d, a) in enumerate(case.recoveries)
    )
    facts = ReceivableFacts(case.determination, History(D(case.principal), moves, case.pauses))
    terms = policy.interest_terms(facts)
    assert terms is not None
    periods = schedule(case.determination, facts.history, terms, case.through)
    assert [(p.number, p.basis, p.amount) for p in periods] == [(n, D(b), D(a)) for n, b, a in case.expected]


def test_partial_period_counted_as_full_is_due_on_the_payoff_day() -> None:
    policy = MedicarePolicy(partial_period_as_full=True)
    history = History(D("1000.00"), (Movement("r", day(45), "ReceivableReduced", D("1000.00"), ZERO),), ())
    terms = policy.interest_terms(ReceivableFacts(J1, history))
    assert terms is not None
    [_, second] = schedule(J1, history, terms, day(45))
    assert (second.due, second.basis, second.amount) == (day(45), D("1000.00"), D("9.58"))


def test_ers_default_rerates_to_the_current_rate_when_higher() -> None:
    # Determined 2023-06-01 at 10.00 %. ERS granted 06-20: 200 due on the 1st of each month from July.
    # Paid 200 on 06-28 (July covered); nothing by 08-01 (missed 1); 150 by 09-01 (missed 2) → default 09-02,
    # when the table says 11.50 %. Periods due before 09-02 keep 10 %; later ones are re-rated.
    det = date(2023, 6, 1)
    plan = ErsPlan(date(2023, 6, 20), tuple((date(2023, m, 1), D("200.00")) for m in range(7, 13)))
    payments = (
        Movement("p1", date(2023, 6, 28), "ReceivableReduced", D("200.00"), ZERO),
        Movement("p2", date(2023, 8, 20), "ReceivableReduced", D("150.00"), ZERO),
    )
    assert ers_default_date(plan, payments) == date(2023, 9, 2)
    facts = ReceivableFacts(det, History(D("1200.00"), payments, ()), ers=plan)
    terms = MedicarePolicy().interest_terms(facts)
    assert terms is not None
    periods = schedule(det, facts.history, terms, date(2023, 10, 30))
    assert [(p.due, p.basis, p.rate, p.amount) for p in periods] == [
        (date(2023, 7, 2), D("1000.00"), D("0.10000"), D("8.33")),  # 1000 × 0.10/12
        (date(2023, 8, 1), D("1000.00"), D("0.10000"), D("8.33")),
        (date(2023, 8, 31), D("850.00"), D("0.10000"), D("7.08")),  # 850 × 0.10/12 = 7.083
        (date(2023, 9, 30), D("850.00"), D("0.11500"), D("8.15")),  # 850 × 0.115/12 = 8.146
        (date(2023, 10, 30), D("850.00"), D("0.11500"), D("8.15")),
    ]
    assert sum(p.amount for p in periods) == D("40.04")


def test_ers_default_keeps_the_locked_rate_when_the_current_one_is_lower() -> None:
    # Determined 2015-02-01 at 10.50 %; default in September 2015 when the rate is 9.75 %: stays 10.50 %.
    plan = ErsPlan(date(2015, 2, 15), ((date(2015, 8, 1), D("100")), (date(2015, 9, 1), D("100"))))
    facts = ReceivableFacts(date(2015, 2, 1), History(D("1000.00"), (), ()), ers=plan)
    terms = MedicarePolicy().interest_terms(facts)
    assert facts.ers_default == date(2015, 9, 2)
    assert terms is not None and terms.rate_for(date(2015, 12, 1)) == D("0.10500")


def test_ers_installments_on_time_never_default() -> None:
    plan = ErsPlan(J1, ((day(30), D("100")), (day(60), D("100")), (day(90), D("100"))))
    paid = tuple(Movement(f"p{i}", day(30 * i - 2), "ReceivableReduced", D("100"), ZERO) for i in (1, 2, 3))
    assert ers_default_date(plan, paid) is None
    # One missed installment alone is not a default either.
    assert ers_default_date(plan, paid[:1] + paid[2:]) is None


# --- back-dated changes: post the difference ---------------------------------------------------------------


def posted_from(periods: list[tuple[int, str, int]], rate: str = "0.10") -> dict[int, Posted]:
    return {n: Posted(n, D(total), version, D(rate)) for n, total, version in periods}


def test_back_dated_payoff_reverses_periods_no_longer_due() -> None:
    # Ticks posted 3 periods on 1000 at 10 % (8.33 each); then a recovery dated day 45 arrives.
    history = History(D("1000.00"), (Movement("late", day(45), "ReceivableReduced", D("1000.00"), ZERO),), ())
    desired = schedule(J1, history, InterestTerms(D("0.10")), day(91))
    postings = reconcile(J1, desired, posted_from([(1, "8.33", 1), (2, "8.33", 1), (3, "8.33", 1)]))
    assert [(p.period.number, p.version, p.amount, p.period.basis) for p in postings] == [
        (2, 2, D("-8.33"), D("0.00")),
        (3, 2, D("-8.33"), D("0.00")),
    ]


def test_back_dated_partial_recovery_corrects_by_the_difference() -> None:
    # 400 recovered on day 50: period 2's basis falls to 600 (5.00), period 3 likewise.
    history = History(D("1000.00"), (Movement("late", day(50), "ReceivableReduced", D("400.00"), ZERO),), ())
    desired = schedule(J1, history, InterestTerms(D("0.10")), day(91))
    postings = reconcile(J1, desired, posted_from([(1, "8.33", 1), (2, "8.33", 1), (3, "8.33", 1)]))
    assert [(p.period.number, p.version, p.amount) for p in postings] == [
        (2, 2, D("-3.33")),
        (3, 2, D("-3.33")),
    ]
    assert reconcile(J1, desired, posted_from([(1, "8.33", 1), (2, "5.00", 2), (3, "5.00", 2)])) == []


def test_earlier_determination_date_adds_the_periods_it_makes_due() -> None:
    # A letter arrives dated 30 days before the determination we had: a fourth period is now due by day 91.
    earlier = day(-30)
    desired = schedule(earlier, History(D("1000.00"), (), ()), InterestTerms(D("0.10")), day(91))
    postings = reconcile(earlier, desired, posted_from([(1, "8.33", 1), (2, "8.33", 1), (3, "8.33", 1)]))
    assert [(p.period.number, p.version, p.amount, p.period.due) for p in postings] == [
        (4, 1, D("8.33"), day(-30 + 121))
    ]


def test_a_moved_day_zero_re_dates_the_periods_already_charged() -> None:
    """Found by the oracle differential (session 9): a letter dated 5 days before the deferral that opened the
    receivable moved day 0 after two periods were charged; their amounts stayed the same, so nothing was
    posted and matching kept each charge on its old due day: a recoupment between the two due days paid
    principal instead of interest."""
    late, early = day(5), day(0)
    first = schedule(late, History(D("1000.00"), (), ()), InterestTerms(D("0.10")), day(70))
    posted = {p.number: Posted(p.number, p.amount, 1, p.rate, p.start, p.end) for p in first}
    desired = schedule(early, History(D("1000.00"), (), ()), InterestTerms(D("0.10")), day(70))
    postings = reconcile(early, desired, posted)
    assert [(p.period.number, p.version, p.amount, p.period.due) for p in postings] == [
        (1, 2, D("-8.33"), day(5 + 31)),
        (1, 3, D("8.33"), day(31)),
        (2, 2, D("-8.33"), day(5 + 61)),
        (2, 3, D("8.33"), day(61)),
    ]
    settled = {
        n: Posted(n, D("8.33"), 3, D("0.10"), p.start, p.end) for n, p in ((p.number, p) for p in desired)
    }
    assert reconcile(early, desired, settled) == []
