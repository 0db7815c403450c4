"""Interest's pure domain: what a receivable's history implies, which periods are due, what each costs.

Medicare (42 CFR 405.378): simple interest on the outstanding principal for each full 30-day period the debt
stays unpaid after the determination date; period *n* covers days 30(n−1)+1 … 30n and is charged on day 30n+1
(so the first charge is on day 31). Per period: principal × annual rate × 30/360, rounded half-up to the cent;
the rate is the one in force on the determination date. No new interest while principal is 0.

The ledger must end exact whatever order facts arrive in, so nothing here is incremental: :func:`schedule` is
the closed form of *all* interest due for a history up to a date, and :func:`reconcile` turns the difference
between that and what was already posted into correcting postings. Replaying, restarting or receiving a
back-dated recovery all reduce to "recompute, post the difference".
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from contracts.money import CENT, ZERO
from policies.facts import (
    ErsPlan,
    Frequency,
    History,
    InterestTerms,
    Movement,
    Pause,
    add_months,
    ers_default_date,
    ers_installments,
)

PERIOD_DAYS = 30
"""Event types by which matching reports money recovered from the provider (a recoupment or a refund)."""
WRITE_OFF = "ReceivableWrittenOff"
"""Event type of a write-off (staff, or an appeal the provider won); also of a recovery that closes a receivable
already partly written off, which is told apart by its recovered totals moving."""
FACTS_ONLY = "ReceivableUpdated"
"""A change that adds a fact (duplicate, payment or identification date) and moves no money."""


@dataclass(frozen=True)
class Period:
    """One interest period as due: ``amount`` is charged on ``due`` (day 30n+1, or the payoff day of a
    partial period counted as full)."""

    number: int
    start: date
    end: date
    due: date
    basis: Decimal
    rate: Decimal
    amount: Decimal


def period_interest(basis: Decimal, annual_rate: Decimal) -> Decimal:
    """Interest of one 30-day period: basis × rate × 30/360, ROUND_HALF_UP to the cent."""
    return (basis * annual_rate * PERIOD_DAYS / 360).quantize(CENT, rounding=ROUND_HALF_UP)


# --- what happened to a receivable ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One ``ReceivableChanged`` as the interest stage received it; figures are matching's running totals."""

    key: str
    effective: date
    event_type: str
    status: str
    change_amount: Decimal
    principal: Decimal
    principal_recovered: Decimal
    interest_recovered: Decimal


def history_from_changes(
    principal: Decimal,
    changes: Sequence[Change],
    schedule: Sequence[tuple[date, Decimal, Decimal, str]] | None = None,
) -> History:
    """Turn running totals (in arrival order) into dated deltas and pause intervals.

    Matching reports cumulative figures in the order it applied them, and the interest stage receives them in
    that order (one partition per account), so consecutive differences are exactly each change's own effect.
    Dating each delta by its own business date makes a recovery that arrives late land where it belongs.

    A pause starts with any change whose status is ``paused`` and ends with the next status-only change
    (amount 0, not an ``InterestAdded`` nor a facts-only ``ReceivableUpdated``) whose status is something else; reductions never end a pause, since
    a recoupment during an appeal is exactly what must be flagged, not a sign the appeal is over.
    """
    movements: list[Movement] = []
    if schedule is not None:
        # Matching's own dated split (recoveries re-split interest-first in business-date order) is the truth;
        # differences between snapshots would date a later re-split at the wrong day.
        kinds = {"offset": "ReceivableReduced", "refund": "RefundReceived", "netting": "ClaimNetting"}
        movements = [
            Movement(
                f"schedule:{day.isoformat()}:{kind}", day, kinds.get(kind, kind), to_principal, to_interest
            )
            for day, to_interest, to_principal, kind in schedule
        ]
    else:
        before_p, before_i = ZERO, ZERO
        for change in changes:
            dp, di = change.principal_recovered - before_p, change.interest_recovered - before_i
            before_p, before_i = change.principal_recovered, change.interest_recovered
            if dp or di:
                movements.append(Movement(change.key, change.effective, change.event_type, dp, di))
    pauses: list[Pause] = []
    started: date | None = None
    for change in sorted(changes, key=lambda c: c.effective):
        if change.event_type == FACTS_ONLY:  # dated by its evidence, it says nothing about a pause
            continue
        if change.status == "paused":
            started = started or change.effective
        elif started is not None and change.change_amount == 0 and change.event_type != "InterestAdded":
            pauses.append(Pause(started, change.effective))
            started = None
    if started is not None:
        pauses.append(Pause(started, None))
    movements.sort(key=lambda m: m.effective)
    return History(principal, tuple(movements), tuple(pauses), write_offs(changes))


def write_offs(changes: Sequence[Change]) -> tuple[tuple[date, Decimal], ...]:
    """The pure write-offs among the changes (in arrival order): ``ReceivableWrittenOff`` changes that recover
    nothing. A recovery that closes a partly written-off receivable carries the same event type, but its
    recovered totals move and its money is already a movement, so it is not counted again."""
    found: list[tuple[date, Decimal]] = []
    before_p, before_i = ZERO, ZERO
    for change in changes:
        unmoved = (change.principal_recovered, change.interest_recovered) == (before_p, before_i)
        if change.event_type == WRITE_OFF and change.change_amount > 0 and unmoved:
            found.append((change.effective, change.change_amount))
        before_p, before_i = change.principal_recovered, change.interest_recovered
    return tuple(found)


# --- extended repayment schedules ----------------------------------------------------------------------------


def ers_plan(
    granted_on: date,
    first_due: date,
    amount: Decimal,
    count: int,
    frequency: Frequency = "monthly",
    final_amount: Decimal | None = None,
) -> ErsPlan:
    """The dated installments of a granted schedule, as the letter granting it states them.

    Monthly installments fall on the first due date's day of the month, counted from the first due date
    (clamped to short months, never drifting: 31 Jan, 28 Feb, 31 Mar). ``final_amount`` is a last installment
    that differs (the remainder); otherwise every installment is ``amount``.
    """
    if count < 1:
        raise ValueError("an extended repayment schedule has at least one installment")
    step = {"weekly": 7, "biweekly": 14}.get(frequency)
    dues = [
        add_months(first_due, k) if step is None else first_due + timedelta(days=step * k)
        for k in range(count)
    ]
    amounts = [amount] * count
    if final_amount is not None:
        amounts[-1] = final_amount
    return ErsPlan(granted_on, tuple(zip(dues, amounts, strict=True)))


def ers_standing(plan: ErsPlan, payments: Sequence[Movement], as_of: date) -> tuple[str, date | None]:
    """(standing, since) for staff: ``in_default`` since the default date, ``completed`` when every installment
    is paid, else ``current``."""
    default = ers_default_date(plan, payments, as_of)
    if default is not None:
        return "in_default", default
    if all(s.status == "paid" for s in ers_installments(plan, payments, as_of)):
        return "completed", None
    return "current", None


def ers_review_day(plan: ErsPlan, after: date) -> date | None:
    """The next day on which an installment can turn out missed (the day after its due date), if any.

    The daily tick only looks at a receivable on its ``next_due``; bringing that forward to this day makes a
    default show in the timeline (and re-rate later periods) the day it happens, not at the next period.
    """
    days = [due + timedelta(days=1) for due, _ in plan.installments if due + timedelta(days=1) > after]
    return min(days, default=None)


# --- the closed form -----------------------------------------------------------------------------------------


def _day(determination: date, n: int) -> date:
    return determination + timedelta(days=n)


def schedule(determination: date, history: History, terms: InterestTerms, through: date) -> list[Period]:
    """Every period charged on or before ``through``: the interest a receivable owes for its final history.

    Period *n*'s basis is the principal outstanding on its last day; a period on a zero basis is skipped, so
    nothing accrues while principal is 0 (and accrual resumes if principal is owed again). With
    ``partial_period_as_full`` a period (n ≥ 2) during which the principal is paid off is charged in full on
    the payoff day, on the principal owed the day before — the contractors' rule that a started period counts.
    """
    periods: list[Period] = []
    n = 1
    while (start := _day(determination, PERIOD_DAYS * (n - 1) + 1)) <= through:
        end = _day(determination, PERIOD_DAYS * n)
        due, basis = end + timedelta(days=1), history.outstanding_on(end)
        if basis <= 0 and terms.partial_period_as_full and n >= 2 and history.outstanding_on(start) > 0:
            payoff = next(
                (
                    m.effective
                    for m in history.movements
                    if start < m.effective <= end and history.outstanding_on(m.effective) <= 0
                ),
                None,
            )  # None: a write-off, not a payment, ended the debt; nothing is charged for its started period
            if payoff is not None:
                due, basis = payoff, history.outstanding_on(payoff - timedelta(days=1))
        if basis > 0 and due <= through:
            rate = terms.rate_for(due)
            periods.append(Period(n, start, end, due, basis, rate, period_interest(basis, rate)))
        n += 1
    return periods


def next_due(determination: date, history: History, terms: InterestTerms | None, after: date) -> date | None:
    """The first day after ``after`` on which a new period could come due, or None while nothing is owed.

    The daily tick only visits receivables whose next due day has come; any change that could make a period
    due earlier (a payoff counted as a full period) arrives as an event and is recomputed there.
    """
    if terms is None or history.outstanding_on(date.max) <= 0:
        return None
    elapsed = (after - determination).days
    n = (elapsed - 1) // PERIOD_DAYS + 1 if elapsed >= 1 else 1
    return _day(determination, PERIOD_DAYS * n + 1)


# --- posting the difference ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """What the ledger holds for one period: the sum of its postings, its latest version and rate."""

    number: int
    total: Decimal
    version: int
    rate: Decimal
    start: date | None = None
    """First day of the period as last posted (None when not known): a reversal of a period that is no longer
    due is dated as the charge it reverses, not by a moved determination date (see :func:`reconcile`)."""
    end: date | None = None


@dataclass(frozen=True)
class Posting:
    """One ledger row and one ``InterestAccrued`` event: version 1 is the original charge, later versions are
    corrections whose ``amount`` is the (possibly negative) difference."""

    period: Period
    version: int
    amount: Decimal


def reconcile(determination: date, desired: Sequence[Period], posted: Mapping[int, Posted]) -> list[Posting]:
    """Postings that make each period's ledger total equal the closed form, in period order.

    A period that is no longer due (a back-dated payoff) is reversed with a posting on a zero basis, so the
    sum of a receivable's interest events always equals :func:`schedule` for its final history.

    A period whose days moved (a letter dated before the remittance that opened the receivable moves day 0
    earlier) is reversed as posted and charged again on its new days, even when its amount stays the same:
    matching splits recoveries between interest and principal by the day each charge fell due, so a charge
    left on its old due day would make a recovery between the two days pay principal instead of interest.
    """
    wanted = {p.number: p for p in desired}
    postings: list[Posting] = []
    for n in sorted(wanted.keys() | posted.keys()):
        have = posted[n].total if n in posted else ZERO
        was = posted.get(n)
        if n in wanted and was is not None and was.end is not None and was.end != wanted[n].end and have:
            period = wanted[n]
            start = was.start or _day(determination, PERIOD_DAYS * (n - 1) + 1)
            old = Period(n, start, was.end, was.end + timedelta(days=1), ZERO, was.rate, ZERO)
            postings.append(Posting(old, was.version + 1, -have))
            if period.amount:
                postings.append(Posting(period, was.version + 2, period.amount))
            continue
        if n in wanted:
            period = wanted[n]
        else:
            # Dated as the charge it reverses: dated by a determination date that moved later, its due day
            # could pass the business date, and matching would hear of a change on a day not yet reached.
            was = posted[n]
            end = was.end or _day(determination, PERIOD_DAYS * n)
            start = was.start or _day(determination, PERIOD_DAYS * (n - 1) + 1)
            period = Period(n, start, end, end + timedelta(days=1), ZERO, was.rate, ZERO)
        if period.amount != have:
            version = posted[n].version + 1 if n in posted else 1
            postings.append(Posting(period, version, period.amount - have))
    return postings
