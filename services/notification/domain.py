"""Notification's pure domain: which upstream facts become which messages, who gets them, and how they read.

Messages carry identifiers (reference/FCN, trace number, receivable id) and amounts only — never patient
names, member ids or patient control numbers — because they leave the system by webhook and e-mail. A PLB
reference can hold a patient control number after its FCN, padded or not (DOMAIN.md §2), so every reference is
quoted through ``quote``: the engine passes the payer's layout (:func:`quoter`), and without one the quote is
conservative (``shared.phi.quotable_reference``). Free text from upstream (an offset's ``reason``) is never
quoted. The engine then runs every message through the outbound scrubber (``shared.phi``) before it is stored,
published or sent.
"""

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from contracts.events import AlertRaised, InterestAccrued, OffsetRecorded, ReceivableChanged
from contracts.references import ReferenceLayout
from shared.phi import NO_TOKENS, Scrubber, Tokens

Severity = Literal["info", "warning", "action"]
Mode = Literal["immediate", "digest"]
Milestone = tuple[str, date]
TimelineOf = Callable[[str, date, date | None], list[Milestone]]
"""(policy name, determination date, date the provider identified it or None) → the receivable's milestones;
supplied by the payer policy plugins."""

RECEIVABLE_OPENED = "receivable_opened"
RECEIVABLE_SETTLED = "receivable_settled"
OFFSET_APPLIED = "offset_applied"
UNMATCHED_RECOVERY = "unmatched_recovery"
UNMATCHED_RECOVERY_RESOLVED = "unmatched_recovery_resolved"
FORWARDING_BALANCE_OPENED = "forwarding_balance_opened"
INTEREST_ACCRUED = "interest_accrued"
DEADLINE_APPROACHING = "deadline_approaching"
DAILY_DIGEST = "daily_digest"
ALERT_KINDS = (
    "reversal_without_correction",
    "forwarding_balance_not_closed",
    "recoupment_during_pause",
    "recoupment_rule_violation",
    "unmatched_recovery_aging",
    "deferral_without_reference",
)
KINDS = (
    RECEIVABLE_OPENED,
    RECEIVABLE_SETTLED,
    OFFSET_APPLIED,
    UNMATCHED_RECOVERY,
    UNMATCHED_RECOVERY_RESOLVED,
    FORWARDING_BALANCE_OPENED,
    INTEREST_ACCRUED,
    DEADLINE_APPROACHING,
    *ALERT_KINDS,
)
"""Every kind a rule can emit (the digest itself excluded): the vocabulary of the routing file."""

WATCHED_MILESTONES = (
    "report_and_return_deadline",
    "rebuttal_deadline",
    "interest_start",
    "recoupment_start",
    "appeal_deadline",
    "contest_deadline",
)
"""Timeline dates staff act on before they pass; ``deadline approaching`` fires once for each."""
ACTION_MILESTONES = ("report_and_return_deadline", "rebuttal_deadline", "appeal_deadline")
"""Deadlines only staff can meet (a report, a rebuttal, an appeal): their reminder asks for action."""

OPEN_STATUSES = ("open", "partially_recovered", "paused")


@dataclass(frozen=True)
class Message:
    """A notification before it is given an id and routed."""

    kind: str
    severity: Severity
    summary: str
    facts: dict[str, str] = field(default_factory=dict)


def money(amount: Decimal) -> str:
    """Dollars with two places, as every fact and summary shows them."""
    return f"{amount:.2f}"


Quote = Callable[[str | None], str | None]
"""A reference → the part of it that may be quoted outside (its receivable key), or None."""


def quoter(layout: ReferenceLayout | None, tokens: Tokens = NO_TOKENS) -> Quote:
    """Quote references by the payer's layout (None: the layout is not known, quote conservatively), cut
    before any known token of the account (``shared.phi.Scrubber.reference``)."""
    return Scrubber(layout, tokens).reference


CONSERVATIVE = quoter(None)


def receivable_key(raw: str | None, quote: Quote = CONSERVATIVE) -> str | None:
    """The part of a PLB reference safe to quote: its receivable key, never the patient part behind it."""
    return quote(raw)


# --- timeline ------------------------------------------------------------------------------------------------


def watched(milestones: Iterable[Milestone]) -> list[Milestone]:
    """The milestones a deadline reminder is due for, in date order, one per label and date."""
    return sorted(
        {(label, day) for label, day in milestones if label in WATCHED_MILESTONES}, key=lambda m: m[1]
    )


# --- rules ---------------------------------------------------------------------------------------------------


def for_receivable(
    event_type: str,
    change: ReceivableChanged,
    timeline: Sequence[Milestone],
    quote: Quote = CONSERVATIVE,
) -> list[Message]:
    """Receivable opened (with the dates that matter) or settled."""
    reference = quote(change.reference) or ""
    facts = {
        "reference": reference,
        "payer_id": change.payer_id,
        "receivable_id": str(change.receivable_id),
        "balance": money(change.balance),
        "status": change.status,
    }
    if event_type == "ReceivableOpened":
        dates = {label: day.isoformat() for label, day in timeline if label != "determination"}
        upcoming = ", ".join(f"{label.replace('_', ' ')} {day}" for label, day in dates.items())
        return [
            Message(
                RECEIVABLE_OPENED,
                "action",
                f"Overpayment {reference}: {money(change.principal)} owed to payer {change.payer_id}, "
                f"determined {change.determination_date.isoformat()}" + (f"; {upcoming}" if upcoming else ""),
                {
                    **facts,
                    "principal": money(change.principal),
                    "determination_date": change.determination_date.isoformat(),
                    "policy": change.policy,
                    **dates,
                },
            )
        ]
    if event_type == "ReceivableSettled":
        return [Message(RECEIVABLE_SETTLED, "info", f"Overpayment {reference} settled", facts)]
    return []


def for_offset(event_type: str, offset: OffsetRecorded, quote: Quote = CONSERVATIVE) -> list[Message]:
    """A recovery that matched nothing, or a forwarding balance carried to a later remittance. (An applied
    offset is announced by :func:`offset_applied` once the balance left is known.)

    A re-match of a parked recovery (``rematch_of`` set) closes the loop the ``unmatched_recovery`` action
    opened: staff hear that the item left the work queue (``unmatched_recovery_resolved``), or, when part of it
    is still unexplained, get the unmatched message again with the new remainder.
    """
    facts = {
        "trace_number": offset.trace_number,
        "payer_id": offset.payer_id,
        "reason_code": offset.reason_code,
        "amount": money(offset.amount),
        "payment_date": offset.payment_date.isoformat(),
    }
    reference = quote(offset.reference)
    if reference:
        facts["reference"] = reference
    if offset.rematch_of is not None:
        facts["rematch_of"] = str(offset.rematch_of)
    if offset.bucket == "staff_dismissed":
        return [
            Message(
                UNMATCHED_RECOVERY_RESOLVED,
                "info",
                f"Recovery on {offset.trace_number} (PLB {offset.reason_code} {reference or 'without reference'}) "
                "no longer unexplained: dismissed by staff as not ours",
                {**facts, "applied": money(Decimal("0.00")), "unmatched": money(offset.unmatched_amount)},
            )
        ]
    if offset.rematch_of is not None and offset.unmatched_amount <= 0:
        return [_resolved(offset, reference, facts, quote)]
    if event_type == "OffsetUnmatched" or (offset.bucket == "allocated" and offset.unmatched_amount > 0):
        return [
            Message(
                UNMATCHED_RECOVERY,
                "action",
                f"Unexplained recovery of {money(offset.unmatched_amount)} on {offset.trace_number} "
                f"(PLB {offset.reason_code} {reference or 'without reference'}): review the work queue",
                {**facts, "unmatched": money(offset.unmatched_amount)},
            )
        ]
    if event_type == "ForwardingBalanceOpened":
        return [
            Message(
                FORWARDING_BALANCE_OPENED,
                "warning",
                f"Forwarding balance of {money(-offset.amount)} on {offset.trace_number} carried to a later "
                "remittance",
                facts,
            )
        ]
    return []


def _resolved(offset: OffsetRecorded, reference: str | None, facts: dict[str, str], quote: Quote) -> Message:
    """The parked recovery is fully explained now: which receivable(s) took it. (Matching's ``reason`` is
    free text that may quote a raw reference, so it is never repeated.)"""
    applied = sum((a.to_interest + a.to_principal for a in offset.allocations), Decimal("0.00"))
    targets = ", ".join(sorted({q for a in offset.allocations if (q := quote(a.reference))}))
    explained = f"re-matched to {targets}" if targets else "explained by matching"
    return Message(
        UNMATCHED_RECOVERY_RESOLVED,
        "info",
        f"Recovery on {offset.trace_number} (PLB {offset.reason_code} {reference or 'without reference'}) "
        f"no longer unexplained: {money(applied)} {explained}",
        {
            **facts,
            "applied": money(applied),
            "unmatched": money(offset.unmatched_amount),
            **({"applied_to": targets} if targets else {}),
        },
    )


@dataclass(frozen=True)
class OffsetApplication:
    """One allocation of a withheld amount joined with the receivable's balance after it."""

    offset_id: str
    receivable_id: str
    reference: str
    trace_number: str
    payment_date: date
    reason_code: str
    applied: Decimal
    to_interest: Decimal
    to_principal: Decimal
    balance_after: Decimal
    status_after: str


def offset_applied(app: OffsetApplication, quote: Quote = CONSERVATIVE) -> Message:
    """Which receivable, how much, what is left."""
    left = "settled" if app.balance_after == 0 else f"{money(app.balance_after)} left"
    reference = quote(app.reference) or ""
    return Message(
        OFFSET_APPLIED,
        "info",
        f"Payer withheld {money(app.applied)} on {app.trace_number} against {reference}: {left}",
        {
            "reference": reference,
            "receivable_id": app.receivable_id,
            "trace_number": app.trace_number,
            "payment_date": app.payment_date.isoformat(),
            "reason_code": app.reason_code,
            "applied": money(app.applied),
            "to_interest": money(app.to_interest),
            "to_principal": money(app.to_principal),
            "balance_left": money(app.balance_after),
            "status": app.status_after,
        },
    )


def for_interest(accrual: InterestAccrued, threshold: Decimal, quote: Quote = CONSERVATIVE) -> list[Message]:
    """Interest charged for a period, when it exceeds the configured threshold (reversals never notify)."""
    if accrual.amount <= 0 or accrual.amount <= threshold:
        return []
    reference = quote(accrual.reference) or ""
    return [
        Message(
            INTEREST_ACCRUED,
            "warning",
            f"Interest {money(accrual.amount)} accrued on {reference} for period {accrual.period_number}",
            {
                "reference": reference,
                "receivable_id": str(accrual.receivable_id),
                "payer_id": accrual.payer_id,
                "amount": money(accrual.amount),
                "period_end": accrual.period_end.isoformat(),
                "annual_rate": str(accrual.annual_rate),
                "threshold": money(threshold),
            },
        )
    ]


def for_alert(alert: AlertRaised, quote: Quote = CONSERVATIVE) -> list[Message]:
    """A flag raised upstream (recoupment during an appeal pause, forwarding balance not closed, reversal
    without correction, …) becomes an action for staff under the alert's own kind. The detail is the
    producer's text: its references were quoted by layout there, and it goes through the scrubber here."""
    facts = {
        "alert_id": str(alert.alert_id),
        "payer_id": alert.payer_id,
        "observed_on": str(alert.observed_on),
    }
    reference = quote(alert.reference)
    if reference:
        facts["reference"] = reference
    if alert.amount is not None:
        facts["amount"] = money(alert.amount)
    title = alert.kind.replace("_", " ")
    return [Message(alert.kind, "action", f"{title.capitalize()}: {alert.detail}"[:500], facts)]


@dataclass(frozen=True)
class Deadline:
    """A watched milestone of an open receivable, from notification's own copy of receivables."""

    receivable_id: str
    reference: str
    payer_id: str
    milestone: str
    due_on: date
    balance: Decimal


def deadline_due(deadline: Deadline, today: date, lead_days: int) -> bool:
    """A reminder is due from ``lead_days`` before the date until the date itself (not after: a passed
    deadline is old news, and a reminder for it would only be noise after a long outage)."""
    return deadline.due_on - timedelta(days=lead_days) <= today <= deadline.due_on


def deadline_approaching(deadline: Deadline, today: date, quote: Quote = CONSERVATIVE) -> Message:
    """The reminder for one receivable and one deadline."""
    days = (deadline.due_on - today).days
    when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
    label = deadline.milestone.replace("_", " ")
    reference = quote(deadline.reference) or ""
    return Message(
        DEADLINE_APPROACHING,
        "action" if deadline.milestone in ACTION_MILESTONES else "warning",
        f"{reference}: {label} {when} ({deadline.due_on.isoformat()}), {money(deadline.balance)} open",
        {
            "reference": reference,
            "receivable_id": deadline.receivable_id,
            "payer_id": deadline.payer_id,
            "milestone": deadline.milestone,
            "due_on": deadline.due_on.isoformat(),
            "days_left": str(days),
            "balance": money(deadline.balance),
        },
    )


# --- digests -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestItem:
    """A notification routed to a digest."""

    notification_id: str
    kind: str
    severity: str
    summary: str


def compose_digest(day: date, items: Sequence[DigestItem]) -> Message:
    """One quiet summary of a tenant's day: counts per kind, then every line in a stable order."""
    ordered = sorted(items, key=lambda i: (i.kind, i.notification_id))
    counts: dict[str, int] = {}
    for item in ordered:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    worst: Severity = (
        "action"
        if any(i.severity == "action" for i in items)
        else "warning"
        if any(i.severity == "warning" for i in items)
        else "info"
    )
    overview = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
    facts = {"digest_day": day.isoformat(), "count": str(len(items))}
    facts |= {f"count.{kind}": str(n) for kind, n in counts.items()}
    facts |= {f"item.{n:03d}": f"[{i.kind}] {i.summary}" for n, i in enumerate(ordered, start=1)}
    facts |= {f"id.{n:03d}": i.notification_id for n, i in enumerate(ordered, start=1)}
    return Message(DAILY_DIGEST, worst, f"Daily summary {day.isoformat()}: {overview}", facts)


# --- delivery ------------------------------------------------------------------------------------------------


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay after failed attempt ``attempt`` (1-based): exponential, capped, with "equal jitter" (half fixed,
    half random) so a fleet of workers retrying one receiver does not stampede it in lock-step."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (0.5 + (rng or random.Random()).random() / 2)  # noqa: S311 - jitter, not cryptography


def render_text(
    kind: str, severity: str, summary: str, facts: Mapping[str, str], notification_id: str
) -> str:
    """The plain-text body of an e-mail: the summary, then every fact on its own line."""
    lines = [summary, "", *(f"{key}: {value}" for key, value in facts.items()), ""]
    lines += [f"kind: {kind}", f"severity: {severity}", f"notification id: {notification_id}"]
    return "\n".join(lines) + "\n"


def subject_line(kind: str, severity: str, facts: Mapping[str, str]) -> str:
    """E-mail subject: severity, kind and the reference when there is one."""
    ref = facts.get("reference") or facts.get("digest_day") or ""
    return f"[offsetstream {severity}] {kind.replace('_', ' ')} {ref}".strip()
