"""Payer policy plugins (entry-point group ``offsetstream.payer_policies``): one interface, five built-ins.

A payer policy answers everything that differs between payers about a receivable: how interest is charged
(:meth:`PayerPolicy.interest_terms`), which dates matter (:meth:`PayerPolicy.timeline`), whether a recoupment
broke the payer's rules (:meth:`PayerPolicy.check_recoupment`), how its PLB references are laid out
(``reference_layout``, read by detection and matching) and which part of a recovery pays interest
(``recovery_order``).

The built-ins are one generic rule engine (:class:`BasePolicy`, a frozen dataclass whose fields are the knobs)
with different defaults: DOMAIN.md §3 for Medicare, §4 for the NY/CA/TX packs, and a commercial default that
charges no interest unless its contract says so. Per tenant and payer, fields are overridden by configuration
(``policies.config``, which every stage resolves through) via :meth:`PayerPolicy.configured`, so "this
payer's contract allows offset" or "this contract charges 12 %" is data, not code. Everything here is pure.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from contracts.money import ZERO
from policies.facts import (
    ErsPlan,
    History,
    InterestTerms,
    Movement,
    Pause,
    RateTable,
    add_months,
    ers_default_date,
)

DATA = Path(__file__).resolve().parent / "data"

RecoveryOrder = Literal["interest_first", "principal_first"]
ViolationKind = Literal["recoupment_rule_violation", "recoupment_during_pause"]
Milestone = tuple[str, date]


# --- what a policy is asked about ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivableFacts:
    """What a policy needs to know about one receivable.

    ``paid_on`` (when the overpaid claim was paid) and ``duplicate`` drive the state look-back and notice
    rules; ``ReceivableChanged`` carries them (``original_payment_date``, ``duplicate``) and the interest store
    keeps them on its receivable row. A receivable whose evidence shows no payment date leaves them idle.
    """

    determination: date
    history: History = field(default_factory=lambda: History(ZERO, (), ()))
    paid_on: date | None = None
    duplicate: bool = False
    ers: ErsPlan | None = None
    as_of: date | None = None
    """The date the facts are judged on: an ERS installment due on or after it is not missed yet (None: the
    final history, every unmet installment missed)."""
    identified_on: date | None = None
    """When the provider identified the overpayment itself (None: the payer found it)."""

    @cached_property
    def ers_default(self) -> date | None:
        """When an ERS went into default (two missed installments), if it has."""
        if self.ers is None:
            return None
        return ers_default_date(self.ers, [m for m in self.history.movements if m.total > 0], self.as_of)

    @property
    def ers_suspension(self) -> Pause | None:
        """Recovery suspended by an ERS: from its grant until it defaults (open-ended while it is current).

        DOMAIN.md §3: recoupment does not start while an approved extended repayment schedule is current.
        """
        if self.ers is None:
            return None
        return Pause(self.ers.granted_on, self.ers_default)


@dataclass(frozen=True)
class Violation:
    """A recoupment that broke the payer's rules; ``rule`` is a short stable label, ``detail`` is for staff."""

    kind: ViolationKind
    rule: str
    detail: str


@runtime_checkable
class PayerPolicy(Protocol):
    """The interface every payer policy plugin implements."""

    @property
    def name(self) -> str:
        """Plugin name, as in the entry point and in ``ReceivableChanged.policy``."""

    @property
    def reference_layout(self) -> str:
        """Name of the :data:`contracts.references.LAYOUTS` entry detection and matching read this payer's PLB
        references with."""

    @property
    def recovery_order(self) -> RecoveryOrder:
        """Whether recovered money pays accrued interest or principal first."""

    def configured(self, options: Mapping[str, Any]) -> "PayerPolicy":
        """A copy with per-tenant/payer options applied; unknown options are an error, not ignored."""

    def interest_terms(self, facts: ReceivableFacts) -> InterestTerms | None:
        """How interest is charged on this receivable; None when the payer charges none."""

    def timeline(self, facts: ReceivableFacts) -> list[Milestone]:
        """The receivable's dates that matter to staff, as (label, date)."""

    def check_recoupment(self, facts: ReceivableFacts, recoupment: Movement) -> list[Violation]:
        """Every rule of the pack a recoupment broke (empty when it is allowed)."""


def timeline(policy: PayerPolicy, receivable: ReceivableFacts) -> list[Milestone]:
    """A receivable's milestones under its policy, in date order."""
    return sorted(policy.timeline(receivable), key=lambda m: m[1])


# --- calendar helpers ----------------------------------------------------------------------------------------


def add_working_days(start: date, days: int, holidays: tuple[date, ...] = ()) -> date:
    """The ``days``-th working day after ``start`` (Monday–Friday, not a listed holiday)."""
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            left -= 1
    return day


# --- the generic rule engine ---------------------------------------------------------------------------------


class PolicyOptionError(ValueError):
    """A configured option the policy does not have, or a value of the wrong kind."""


@dataclass(frozen=True)
class BasePolicy:
    """A payer policy as data. ``None`` switches a rule off. Day numbers count from the determination date
    (day 0: the demand letter / written notice)."""

    name: str = "base"
    reference_layout: str = "plain"
    recovery_order: RecoveryOrder = "interest_first"
    annual_rate: Decimal | None = None
    """Fixed contract rate; None = no interest (Medicare overrides this with its rate table)."""
    partial_period_as_full: bool = False
    rebuttal_days: int | None = None
    appeal_days: int | None = None
    appeal_receipt_days: int = 0
    """Days after the notice its receipt is presumed (42 CFR 405.942(a)(1): 5), added before ``appeal_days``."""
    recovery_not_before_day: int | None = None
    contest_working_days: int | None = None
    recovery_waits_for_appeal: bool = True
    notice_exempts_duplicates: bool = False
    notice_within_days_of_payment: int | None = None
    recovery_lookback_months: int | None = None
    offset_allowed: bool = True
    holidays: tuple[date, ...] = ()
    return_within_days_of_identification: int | None = None
    """An overpayment the provider identified itself must be reported and returned within this many days of
    identification (Medicare and Medicaid: 60, 42 CFR 401.305; identification may wait for a timely,
    good-faith investigation of at most 180 days, so staff enter the date it concluded)."""

    def configured(self, options: Mapping[str, Any]) -> "BasePolicy":
        """A copy with ``options`` applied, each coerced to the field's type."""
        hints = typing.get_type_hints(type(self))
        names = {f.name for f in dataclasses.fields(self) if f.init}
        changes: dict[str, Any] = {}
        for key, value in options.items():
            if key not in names or key == "name":
                raise PolicyOptionError(
                    f"payer policy {self.name!r} has no option {key!r}; expected one of {', '.join(sorted(names - {'name'}))}"
                )
            changes[key] = _coerce(key, hints[key], value)
        return dataclasses.replace(self, **changes)

    # interest ---------------------------------------------------------------------------------------------

    def locked_rate(self, determination: date) -> Decimal | None:
        """Rate fixed at the determination date for the life of the debt."""
        return self.annual_rate

    def current_rate(self, day: date) -> Decimal | None:
        """Rate in force on ``day`` (what a defaulted ERS is re-rated to, if higher)."""
        return self.annual_rate

    def interest_terms(self, facts: ReceivableFacts) -> InterestTerms | None:
        """Locked rate, the partial-period rule, and an ERS re-rate once it is in default."""
        rate = self.locked_rate(facts.determination)
        if rate is None:
            return None
        rerate = None
        if facts.ers_default is not None:
            current = self.current_rate(facts.ers_default)
            rerate = (facts.ers_default, current) if current is not None else None
        return InterestTerms(rate, self.partial_period_as_full, rerate)

    # dates ------------------------------------------------------------------------------------------------

    def contest_deadline(self, facts: ReceivableFacts) -> date | None:
        """Last day to contest, counted in working days (California)."""
        if self.contest_working_days is None:
            return None
        return add_working_days(facts.determination, self.contest_working_days, self.holidays)

    def earliest_recovery(self, facts: ReceivableFacts, *, after_suspensions: bool = True) -> date | None:
        """First day a recoupment is allowed; with ``after_suspensions`` pushed past an appeal that began
        before it (Texas: "the later of day 45 or the end of the appeal") and past an ERS granted before it
        (to its default; None while the ERS is current: recoupment does not start at all)."""
        candidates: list[date] = []
        if self.recovery_not_before_day is not None and not (
            self.notice_exempts_duplicates and facts.duplicate
        ):
            candidates.append(facts.determination + timedelta(days=self.recovery_not_before_day))
        contest = self.contest_deadline(facts)
        if contest is not None:
            candidates.append(contest + timedelta(days=1))
        if not candidates:
            return None
        earliest = max(candidates)
        if after_suspensions and self.recovery_waits_for_appeal:
            for pause in facts.history.pauses:
                if pause.end is not None and pause.start <= earliest:
                    earliest = max(earliest, pause.end)
        ers = facts.ers_suspension
        if after_suspensions and ers is not None and ers.start <= earliest:
            return None if ers.end is None else max(earliest, ers.end)
        return earliest

    def timeline(self, facts: ReceivableFacts) -> list[Milestone]:
        """Every milestone the pack defines, plus pauses and ERS events from the history."""
        det = facts.determination
        out: list[Milestone] = [("determination", det)]
        if facts.identified_on is not None and self.return_within_days_of_identification is not None:
            days = self.return_within_days_of_identification
            out.append(("report_and_return_deadline", facts.identified_on + timedelta(days=days)))
        if self.rebuttal_days is not None:
            out.append(("rebuttal_deadline", det + timedelta(days=self.rebuttal_days)))
        if self.interest_terms(facts) is not None:
            out.append(("pay_without_interest_by", det + timedelta(days=30)))
            out.append(("interest_start", det + timedelta(days=31)))
        contest = self.contest_deadline(facts)
        if contest is not None:
            out.append(("contest_deadline", contest))
        if self.appeal_days is not None:
            out.append(("appeal_deadline", det + timedelta(days=self.appeal_receipt_days + self.appeal_days)))
        earliest = self.earliest_recovery(facts)
        if earliest is not None:
            out.append(("recoupment_start", earliest))
        if facts.paid_on is not None and self.notice_within_days_of_payment is not None:
            out.append(
                ("notice_deadline", facts.paid_on + timedelta(days=self.notice_within_days_of_payment))
            )
        if facts.paid_on is not None and self.recovery_lookback_months is not None:
            out.append(("recovery_lookback_limit", add_months(facts.paid_on, self.recovery_lookback_months)))
        for pause in facts.history.pauses:
            out.append(("recoupment_paused", pause.start))
            if pause.end is not None:
                out.append(("recoupment_resumed", pause.end))
        if facts.ers is not None:
            out.append(("ers_granted", facts.ers.granted_on))
            if facts.ers_default is not None:
                out.append(("ers_defaulted", facts.ers_default))
        return out

    # recoupment rules -------------------------------------------------------------------------------------

    def check_recoupment(self, facts: ReceivableFacts, recoupment: Movement) -> list[Violation]:
        """Pause, current ERS, waiting period, notice deadline, look-back and contract-offset rules, in that
        order."""
        day, found = recoupment.effective, []
        if facts.history.paused_on(day):
            found.append(
                Violation(
                    "recoupment_during_pause", "appeal_pause", "recouped while an appeal pauses recovery"
                )
            )
        ers = facts.ers_suspension
        if ers is not None and ers.covers(day):
            found.append(
                Violation(
                    "recoupment_rule_violation",
                    "ers_current",
                    f"recouped while the extended repayment schedule granted {ers.start.isoformat()} is current",
                )
            )
        earliest = self.earliest_recovery(facts, after_suspensions=False)  # a suspension is flagged once
        if earliest is not None and day < earliest:
            found.append(
                Violation("recoupment_rule_violation", "too_early", f"recouped before {earliest.isoformat()}")
            )
        if facts.paid_on is not None and self.notice_within_days_of_payment is not None:
            limit = facts.paid_on + timedelta(days=self.notice_within_days_of_payment)
            if facts.determination > limit:
                found.append(
                    Violation("recoupment_rule_violation", "late_notice", f"notice after {limit.isoformat()}")
                )
        first = facts.history.recoupments()[0].key if facts.history.recoupments() else None
        if (
            facts.paid_on is not None
            and self.recovery_lookback_months is not None
            and recoupment.key == first
        ):
            limit = add_months(facts.paid_on, self.recovery_lookback_months)
            if day > limit:
                found.append(
                    Violation(
                        "recoupment_rule_violation", "too_late", f"recovery begun after {limit.isoformat()}"
                    )
                )
        if not self.offset_allowed:
            found.append(
                Violation(
                    "recoupment_rule_violation",
                    "offset_not_allowed",
                    "the payer contract does not allow offset",
                )
            )
        return found


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Coerce a configuration value (JSON) to a policy field's type; floats never become money or rates."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool and isinstance(value, bool):
            return value
        if hint is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if hint is Decimal and isinstance(value, str | int) and not isinstance(value, bool):
            return Decimal(str(value))
        if hint is str and isinstance(value, str):
            return value
        if typing.get_origin(hint) is Literal and value in typing.get_args(hint):
            return value
        if hint is RateTable and isinstance(value, str):
            return RateTable.from_csv(Path(value))
        if typing.get_origin(hint) is tuple and isinstance(value, list):
            return tuple(date.fromisoformat(v) for v in value)
    except (InvalidOperation, ValueError, OSError) as exc:
        raise PolicyOptionError(f"option {key!r}: {exc}") from exc
    raise PolicyOptionError(f"option {key!r} cannot be {type(value).__name__} {value!r}")


# --- the built-ins -------------------------------------------------------------------------------------------


def _medicare_rates() -> RateTable:
    return RateTable.from_csv(DATA / "medicare_interest_rates.csv")


@dataclass(frozen=True)
class MedicarePolicy(BasePolicy):
    """Medicare (42 CFR 405.378/405.379): rebuttal to day 15, interest from day 31 at the rate in force on
    the determination date (rate table, ``rates`` option = a CSV path), recoupment from day 41, appeals pause
    recoupment. Redetermination deadline (DOMAIN.md is silent): 120 days from receipt of the determination,
    receipt presumed 5 days after the notice — 42 CFR 405.942(a) — so day 125."""

    name: str = "medicare"
    reference_layout: str = "medicare"
    rates: RateTable = field(default_factory=_medicare_rates, repr=False, compare=False)
    rebuttal_days: int | None = 15
    appeal_days: int | None = 120
    appeal_receipt_days: int = 5
    recovery_not_before_day: int | None = 41
    return_within_days_of_identification: int | None = 60

    def locked_rate(self, determination: date) -> Decimal | None:
        """The rate table's rate on the determination date, fixed for the life of the debt."""
        return self.rates.rate_on(determination)

    def current_rate(self, day: date) -> Decimal | None:
        """The rate table's rate on ``day``."""
        return self.rates.rate_on(day)


@dataclass(frozen=True)
class CommercialPolicy(BasePolicy):
    """Default for non-Medicare payers: no interest (set ``annual_rate`` when a contract charges it), no
    waiting period; only recoupment during an appeal pause is flagged."""

    name: str = "commercial"


@dataclass(frozen=True)
class NewYorkPolicy(BasePolicy):
    """New York: 30 days' written notice before recovery (duplicates exempt); no recovery begun more than
    24 months after payment."""

    name: str = "ny"
    recovery_not_before_day: int | None = 30
    notice_exempts_duplicates: bool = True
    recovery_lookback_months: int | None = 24


@dataclass(frozen=True)
class CaliforniaPolicy(BasePolicy):
    """California: written request within 365 days of payment, 30 working days to contest, offset only if
    the contract allows it (``offset_allowed``: off until configured per payer)."""

    name: str = "ca"
    notice_within_days_of_payment: int | None = 365
    contest_working_days: int | None = 30
    offset_allowed: bool = False


@dataclass(frozen=True)
class TexasPolicy(BasePolicy):
    """Texas: notice within 180 days of payment, 45 days to appeal, no recovery before the later of day 45
    or the end of the appeal."""

    name: str = "tx"
    notice_within_days_of_payment: int | None = 180
    appeal_days: int | None = 45
    recovery_not_before_day: int | None = 45
