"""What a batch of inputs does to the receivables it touches, decided in pure code over frozen values.

The engine loads every receivable a batch names at once (``store.load``, under row locks), then hands each input
in turn to :func:`advance` with the :class:`Account` as the inputs before it left it, and finally writes each
changed row once (``store.write``). So the inputs see each other's effects in order, exactly as if they had been
handled one by one, while the database sees a constant number of statements per batch instead of a dozen per
input. Nothing here touches the database or a metric: what to write and what to announce is returned
(:class:`Outcome`) and the engine does it.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from itertools import groupby
from uuid import UUID

from contracts.events import AlertRaised, InterestAccrued, ReceivableChanged
from contracts.money import CENT
from contracts.references import layout
from contracts.topics import INTEREST
from policies import facts
from policies.config import PolicyResolver
from policies.facts import ErsPlan
from policies.payers import Milestone, PayerPolicy, ReceivableFacts, timeline
from services.interest import domain
from shared import envelopes, phi
from shared.alerts import alert_message
from shared.ids import stable_id
from shared.messages import Outgoing

Key = tuple[str, UUID]
"""(tenant, receivable id): one receivable."""

Schedule = tuple[tuple[date, Decimal, Decimal, str], ...]
"""Matching's dated recovery split: (business date, to interest, to principal, kind)."""

RATE_PLACES = Decimal("0.00001")
"""``interest.accruals.annual_rate`` is numeric(8,5): a rate read back has five places, so one kept in memory
between two inputs of a batch must have them too (it is announced again in a reversing posting)."""


def accrual_id(rid: UUID, period: int, version: int) -> UUID:
    """Event id of one posting: version 1 keeps the original (receivable, period) id."""
    if version == 1:
        return stable_id(rid, "interest", period)
    return stable_id(rid, "interest", period, "v", version)


@dataclass(frozen=True, slots=True)
class Receivable:
    """One ``interest.receivables`` row: the receivable as matching last described it, plus how far interest
    has accrued it and under which policy (and why)."""

    tenant_id: str
    receivable_id: UUID
    account_key: str
    payer_id: str
    reference: str
    policy: str
    determination_date: date
    principal: Decimal
    principal_recovered: Decimal
    status: str
    paid_on: date | None
    duplicate: bool
    identified_on: date | None
    recovery_schedule: Schedule | None
    policy_applied: str | None
    accrued_through: date | None
    next_due: date | None
    policy_reason: str | None
    policy_source: str | None

    @property
    def key(self) -> Key:
        """(tenant, receivable id)."""
        return (self.tenant_id, self.receivable_id)


@dataclass(frozen=True, slots=True)
class Account:
    """Everything interest knows about one receivable: its row (None before its first change), its changes in
    arrival order, what the ledger holds per period, its repayment plan and the alerts already raised."""

    key: Key
    row: Receivable | None
    changes: tuple[domain.Change, ...]
    posted: Mapping[int, domain.Posted]
    plan: ErsPlan | None
    alert_ids: frozenset[UUID]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A ``ReceivableChanged`` to append to a receivable's history before recomputing it."""

    account_key: str
    event_id: UUID
    event_type: str
    change: ReceivableChanged


@dataclass(frozen=True, slots=True)
class Request:
    """What one input asks of one receivable: record a change or a repayment plan (either, neither), then
    recompute up to ``through``; ``cause`` is the causation id of what it announces."""

    key: Key
    through: date
    cause: str
    recorded: Recorded | None = None
    plan: ErsPlan | None = None


@dataclass(frozen=True, slots=True)
class Emitted:
    """A message and its idempotency id (the outbox key)."""

    message_id: str
    message: Outgoing


@dataclass(frozen=True, slots=True)
class NewChange:
    """A history row to append (``interest.principal_history``)."""

    key: Key
    event_id: UUID
    event_type: str
    change: ReceivableChanged


@dataclass(frozen=True, slots=True)
class NewPosting:
    """An accrual row to insert, under the policy that charged it (for the metrics)."""

    key: Key
    event_id: UUID
    posting: domain.Posting
    cause: str
    policy: str


@dataclass(frozen=True, slots=True)
class NewAlert:
    """A recoupment alert to record once."""

    key: Key
    alert_id: UUID
    kind: str
    rules: tuple[str, ...]
    observed_on: date
    amount: Decimal
    detail: str
    source_event: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input did: the messages it owes and the rows it adds; its timeline when it recomputed."""

    emitted: tuple[Emitted, ...] = ()
    history: tuple[NewChange, ...] = ()
    postings: tuple[NewPosting, ...] = ()
    alerts: tuple[NewAlert, ...] = ()
    timeline: tuple[Milestone, ...] | None = None


def schedule_of(change: ReceivableChanged) -> Schedule | None:
    """The recovery split a change carries, as the row keeps it."""
    if change.recovery_schedule is None:
        return None
    return tuple((r.effective_date, r.to_interest, r.to_principal, r.kind) for r in change.recovery_schedule)


def _earliest(kept: date | None, new: date | None) -> date | None:
    """SQL ``LEAST``: the earlier date, a missing one ignored."""
    return min((d for d in (kept, new) if d is not None), default=None)


def opened(tenant: str, account: str, change: ReceivableChanged) -> Receivable:
    """The row of a receivable first seen with this change."""
    return Receivable(
        tenant, change.receivable_id, account, change.payer_id, change.reference, change.policy,
        change.determination_date, change.principal, change.principal_recovered, change.status,
        change.original_payment_date, change.duplicate, change.identified_on,
        None, None, None, None, None, None,
    )  # fmt: skip


def updated(row: Receivable, change: ReceivableChanged) -> Receivable:
    """The row after a change not seen before: matching's latest figures, while the earliest payment and
    identification dates and any duplicate flag seen win (the state packs' look-back, notice and
    report-and-return rules read them); a change without a recovery split keeps the one before."""
    schedule = schedule_of(change)
    return replace(
        row,
        principal=change.principal,
        principal_recovered=change.principal_recovered,
        status=change.status,
        policy=change.policy,
        determination_date=change.determination_date,
        paid_on=_earliest(row.paid_on, change.original_payment_date),
        duplicate=row.duplicate or change.duplicate,
        identified_on=_earliest(row.identified_on, change.identified_on),
        recovery_schedule=row.recovery_schedule if schedule is None else schedule,
    )


def plan_replaces(new: ErsPlan, kept: ErsPlan | None) -> bool:
    """A later (or same-day, corrected) grant replaces the plan; an older grant arriving late never replaces a
    newer one, and the same grant again changes nothing."""
    if kept is None:
        return True
    return new.granted_on >= kept.granted_on and (new.granted_on, installments_json(new)) != (
        kept.granted_on,
        installments_json(kept),
    )


def installments_json(plan: ErsPlan) -> str:
    """The installments as stored (``[[due, amount], ...]``), which is also how two grants are compared."""
    return json.dumps([[due.isoformat(), str(amount)] for due, amount in plan.installments])


def next_look(facts: ReceivableFacts, terms: facts.InterestTerms | None, horizon: date) -> date | None:
    """When the tick must recompute again: the next period due, or earlier the day an ERS installment can
    turn out missed (so a default shows, and re-rates, the day it happens)."""
    due = domain.next_due(facts.determination, facts.history, terms, horizon)
    if due is None or facts.ers is None or facts.ers_default is not None:
        return due
    review = domain.ers_review_day(facts.ers, horizon)
    return due if review is None else min(due, review)


def advance(
    account: Account, request: Request, resolver: PolicyResolver[PayerPolicy]
) -> tuple[Account, Outcome]:
    """One input applied to its receivable: the account as the next input sees it, and what to write and
    announce. Raises ``PolicyConfigError`` when the payer's policy is not installed."""
    history: tuple[NewChange, ...] = ()
    recorded = request.recorded
    if recorded is not None:
        tenant = request.key[0]
        change = recorded.change
        row = account.row or opened(tenant, recorded.account_key, change)
        if str(recorded.event_id) not in {c.key for c in account.changes}:
            account = replace(
                account,
                row=updated(row, change),
                changes=(*account.changes, as_change(recorded.event_id, recorded.event_type, change)),
            )
            history = (NewChange(request.key, recorded.event_id, recorded.event_type, change),)
        else:
            account = replace(account, row=row)
    if request.plan is not None:
        if not plan_replaces(request.plan, account.plan):
            return account, Outcome()
        account = replace(account, plan=request.plan)
    account, outcome = recompute(account, request.through, request.cause, resolver)
    return account, replace(outcome, history=history)


def as_change(event_id: UUID, event_type: str, change: ReceivableChanged) -> domain.Change:
    """A received change as the history keeps it."""
    return domain.Change(
        str(event_id),
        change.effective_date,
        event_type,
        change.status,
        change.change_amount,
        change.principal,
        change.principal_recovered,
        change.interest_recovered,
    )


def recompute(
    account: Account, through: date, cause: str, resolver: PolicyResolver[PayerPolicy]
) -> tuple[Account, Outcome]:
    """Post whatever makes the ledger equal the closed form up to ``through``; refresh timeline and alerts.

    Recomputation is over the whole history and never goes back in time (``accrued_through`` only grows), so
    a back-dated recovery or determination date yields correcting postings and the ledger ends exact.
    """
    row = account.row
    if row is None:  # a repayment plan for a receivable whose first change has not arrived yet
        return account, Outcome()
    policy = resolver.resolve(row.tenant_id, row.payer_id)
    why = resolver.resolution(row.tenant_id, row.payer_id)
    determination = row.determination_date
    history = domain.history_from_changes(row.principal, account.changes, row.recovery_schedule)
    horizon = max(through, row.accrued_through or through)
    known = ReceivableFacts(
        determination, history, row.paid_on, row.duplicate, account.plan, horizon, row.identified_on
    )
    terms = policy.interest_terms(known)
    desired = domain.schedule(determination, history, terms, horizon) if terms is not None else []
    posted = dict(account.posted)
    postings: list[NewPosting] = []
    emitted: list[Emitted] = []
    for posting in domain.reconcile(determination, desired, account.posted):
        period = posting.period
        event_id = accrual_id(row.receivable_id, period.number, posting.version)
        before = posted[period.number].total if period.number in posted else Decimal("0.00")
        posted[period.number] = domain.Posted(
            period.number,
            (before + posting.amount).quantize(CENT),
            posting.version,
            period.rate.quantize(RATE_PLACES),
            period.start,
            period.end,
        )
        postings.append(NewPosting(account.key, event_id, posting, cause, policy.name))
        emitted.append(Emitted(str(event_id), interest_event(row, policy, posting, event_id, cause)))
    alerts = new_alerts(account, row, policy, known, cause)
    emitted += [Emitted(str(a.alert_id), alert_event(row, policy, a, cause)) for a in alerts]
    row = replace(
        row,
        policy_applied=policy.name,
        accrued_through=horizon,
        next_due=next_look(known, terms, horizon),
        policy_reason=why.reason,
        policy_source=why.source,
    )
    account = replace(
        account, row=row, posted=posted, alert_ids=account.alert_ids | {a.alert_id for a in alerts}
    )
    outcome = Outcome(tuple(emitted), (), tuple(postings), tuple(alerts), tuple(timeline(policy, known)))
    return account, outcome


def new_alerts(
    account: Account, row: Receivable, policy: PayerPolicy, known: ReceivableFacts, cause: str
) -> list[NewAlert]:
    """Check every recoupment again (a back-dated pause can make an old one a violation); the alerts not
    raised before, once per (recoupment, kind)."""
    found: list[NewAlert] = []
    for recoupment in known.history.recoupments():
        violations = sorted(policy.check_recoupment(known, recoupment), key=lambda v: v.kind)
        for kind, group in groupby(violations, key=lambda v: v.kind):
            same = list(group)
            alert_id = stable_id("alert", kind, row.receivable_id, recoupment.key)
            if alert_id in account.alert_ids:
                continue
            detail = (
                f"{policy.name} receivable {row.reference}: {recoupment.total} recovered on "
                f"{recoupment.effective.isoformat()}: " + "; ".join(v.detail for v in same)
            )
            found.append(
                NewAlert(
                    account.key,
                    alert_id,
                    kind,
                    tuple(v.rule for v in same),
                    recoupment.effective,
                    recoupment.total,
                    detail,
                    recoupment.key,
                )
            )
    return found


def interest_event(
    row: Receivable, policy: PayerPolicy, posting: domain.Posting, event_id: UUID, cause: str
) -> Outgoing:
    """The ``InterestAccrued`` of one posting, keyed by the receivable's account."""
    period = posting.period
    payload = InterestAccrued(
        receivable_id=row.receivable_id,
        payer_id=row.payer_id,
        reference=row.reference,
        policy=policy.name,
        period_number=period.number,
        period_start=period.start,
        period_end=period.end,
        principal_basis=period.basis,
        annual_rate=period.rate,
        amount=posting.amount,
        version=posting.version,
    )
    return Outgoing.event(
        INTEREST,
        envelopes.build(
            payload,
            event_id=event_id,
            event_type="InterestAccrued",
            tenant_id=row.tenant_id,
            account_key=row.account_key,
            causation_id=cause,
        ),
    )


def alert_event(row: Receivable, policy: PayerPolicy, alert: NewAlert, cause: str) -> Outgoing:
    """The ``AlertRaised`` of a new alert, its references scrubbed by the payer's layout."""
    payload = phi.safe_alert(
        AlertRaised(
            alert_id=alert.alert_id,
            kind=alert.kind,
            payer_id=row.payer_id,
            reference=row.reference,
            amount=alert.amount,
            observed_on=alert.observed_on,
            detail=alert.detail,
        ),
        layout(policy.reference_layout),
    )
    return alert_message(payload, tenant_id=row.tenant_id, account_key=row.account_key, causation_id=cause)
