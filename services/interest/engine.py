"""The accrual engine: load a receivable, ask its policy, post the difference, say what changed.

Both halves of accrual run the same :meth:`Engine.recompute` under a row lock:
- event-driven (a ``ReceivableChanged``, or a repayment schedule staff recorded): up to the change's business
  date — the handler's outputs are exactly-once through ``ops.processed_events``;
- time-driven (the tick): up to today, for receivables whose next period has come due — its events go through
  the transactional outbox (``shared.outbox``) in the same transaction as the ledger rows.
Recomputation is over the whole history and never goes back in time (``accrued_through`` only grows), so a
back-dated recovery or determination date yields correcting postings and the ledger ends exact.
"""

import logging
from dataclasses import dataclass
from datetime import date
from itertools import groupby
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope
from contracts.events import AlertRaised, InterestAccrued, ReceivableChanged, StaffActionRecorded
from contracts.references import layout
from contracts.topics import INTEREST
from policies import facts
from policies.config import PolicyConfigError, PolicyResolver
from policies.payers import PayerPolicy, ReceivableFacts, timeline
from services.interest import domain, metrics
from services.interest.store import InterestStore, schedule_of
from shared import envelopes, outbox, phi
from shared.alerts import alert_message
from shared.effects import after_commit
from shared.ids import receivable_id, stable_id
from shared.messages import Outgoing

log = logging.getLogger(__name__)

SERVICE = "interest"


def accrual_id(rid: UUID, period: int, version: int) -> UUID:
    """Event id of one posting: version 1 keeps the original (receivable, period) id."""
    if version == 1:
        return stable_id(rid, "interest", period)
    return stable_id(rid, "interest", period, "v", version)


@dataclass(frozen=True)
class Emitted:
    """A message and its idempotency id (the outbox key)."""

    message_id: str
    message: Outgoing


def next_look(facts: ReceivableFacts, terms: facts.InterestTerms | None, horizon: date) -> date | None:
    """When the tick must recompute again: the next period due, or earlier the day an ERS installment can
    turn out missed (so a default shows, and re-rates, the day it happens)."""
    due = domain.next_due(facts.determination, facts.history, terms, horizon)
    if due is None or facts.ers is None or facts.ers_default is not None:
        return due
    review = domain.ers_review_day(facts.ers, horizon)
    return due if review is None else min(due, review)


class Engine:
    """Stateless apart from the resolved policies: dropping it and building a new one changes nothing."""

    def __init__(self, resolver: PolicyResolver[PayerPolicy], store: InterestStore) -> None:
        self.resolver = resolver
        self.store = store

    async def on_change(self, conn: asyncpg.Connection, env: Envelope[ReceivableChanged]) -> list[Outgoing]:
        """Record a receivable change and recompute up to its business date (inside the caller's transaction)."""
        change = env.payload
        await self.store.record_change(
            conn, env.tenant_id, env.account_key, env.event_id, env.event_type, change
        )
        emitted = await self.recompute(
            conn, env.tenant_id, change.receivable_id, change.effective_date, str(env.event_id)
        )
        return [e.message for e in emitted]

    async def on_staff_action(
        self, conn: asyncpg.Connection, env: Envelope[StaffActionRecorded]
    ) -> list[Outgoing]:
        """Record an extended repayment schedule and recompute the receivable (other staff actions reach
        interest as receivable changes from matching, so they are not this stage's to read).

        The plan is stored even when the receivable has not reached this stage yet (the two topics are not
        ordered with each other): the receivable's first change then finds it.
        """
        action = env.payload
        if action.kind != "repayment_schedule_granted" or action.schedule is None:
            return []
        terms = action.schedule
        plan = domain.ers_plan(
            action.effective_date,
            terms.first_due_date,
            terms.installment_amount,
            terms.installments,
            terms.frequency,
            terms.final_installment_amount,
        )
        rid = receivable_id(env.tenant_id, action.payer_id, action.reference.strip())
        if not await self.store.save_repayment_plan(conn, env.tenant_id, rid, plan):
            return []
        emitted = await self.recompute(conn, env.tenant_id, rid, action.effective_date, str(env.event_id))
        return [e.message for e in emitted]

    async def tick(self, conn: asyncpg.Connection, day: date, tenants: list[str] | None = None) -> int:
        """Accrue every receivable with a period due by ``day``, one transaction each; return events queued.

        A receivable whose policy is not installed is skipped with a warning (and a metric) so one bad
        configuration entry cannot stop interest for every other receivable.
        """
        queued = 0
        for tenant, rid in await self.store.due_receivables(conn, day, tenants):
            try:
                async with conn.transaction():
                    emitted = await self.recompute(conn, tenant, rid, day, f"interest tick {day.isoformat()}")
                    for item in emitted:
                        await outbox.add(conn, SERVICE, item.message_id, item.message)
            except PolicyConfigError as exc:
                metrics.POLICY_ERRORS.inc()
                log.warning("interest tick skipped receivable %s of tenant %s: %s", rid, tenant, exc)
                continue
            queued += len(emitted)
        return queued

    async def recompute(
        self, conn: asyncpg.Connection, tenant: str, rid: UUID, through: date, cause: str
    ) -> list[Emitted]:
        """Post whatever makes the ledger equal the closed form up to ``through``; refresh timeline and alerts."""
        row = await self.store.lock_receivable(conn, tenant, rid)
        if row is None:
            return []
        policy = self.resolver.resolve(tenant, row["payer_id"])
        why = self.resolver.resolution(tenant, row["payer_id"])
        determination: date = row["determination_date"]
        history = domain.history_from_changes(
            row["principal"], await self.store.changes(conn, tenant, rid), schedule_of(row)
        )
        horizon = max(through, row["accrued_through"] or through)
        plan = await self.store.repayment_plan(conn, tenant, rid)
        facts = ReceivableFacts(
            determination, history, row["paid_on"], row["duplicate"], plan, horizon, row["identified_on"]
        )
        terms = policy.interest_terms(facts)
        desired = domain.schedule(determination, history, terms, horizon) if terms is not None else []
        postings = domain.reconcile(determination, desired, await self.store.posted(conn, tenant, rid))
        emitted: list[Emitted] = []
        for posting in postings:
            event_id = accrual_id(rid, posting.period.number, posting.version)
            if await self.store.add_posting(conn, tenant, rid, event_id, posting, cause):
                metrics.count_posting(policy.name, posting.version, posting.amount)
                emitted.append(
                    Emitted(str(event_id), self._interest_event(row, policy, posting, event_id, cause))
                )
        emitted += await self._alerts(conn, row, policy, facts, cause)
        await self.store.save_timeline(conn, tenant, rid, timeline(policy, facts))
        await self.store.save_progress(
            conn, tenant, rid, policy.name, horizon, next_look(facts, terms, horizon), why.reason, why.source
        )
        return emitted

    @staticmethod
    def _interest_event(
        row: asyncpg.Record, policy: PayerPolicy, posting: domain.Posting, event_id: UUID, cause: str
    ) -> Outgoing:
        period = posting.period
        payload = InterestAccrued(
            receivable_id=row["receivable_id"],
            payer_id=row["payer_id"],
            reference=row["reference"],
            policy=policy.name,
            period_number=period.number,
            period_start=period.start,
            period_end=period.end,
            principal_basis=period.basis,
            annual_rate=period.rate,
            amount=posting.amount,
        )
        return Outgoing.event(
            INTEREST,
            envelopes.build(
                payload,
                event_id=event_id,
                event_type="InterestAccrued",
                tenant_id=row["tenant_id"],
                account_key=row["account_key"],
                causation_id=cause,
            ),
        )

    async def _alerts(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        policy: PayerPolicy,
        facts: ReceivableFacts,
        cause: str,
    ) -> list[Emitted]:
        """Check every recoupment again (a back-dated pause can make an old one a violation); raise new ones."""
        tenant, rid = row["tenant_id"], row["receivable_id"]
        emitted: list[Emitted] = []
        for recoupment in facts.history.recoupments():
            violations = sorted(policy.check_recoupment(facts, recoupment), key=lambda v: v.kind)
            for kind, group in groupby(violations, key=lambda v: v.kind):
                found = list(group)
                alert_id = stable_id("alert", kind, rid, recoupment.key)
                detail = (
                    f"{policy.name} receivable {row['reference']}: {recoupment.total} recovered on "
                    f"{recoupment.effective.isoformat()}: " + "; ".join(v.detail for v in found)
                )
                rules = [v.rule for v in found]
                if not await self.store.add_alert(
                    conn,
                    tenant,
                    alert_id,
                    rid,
                    kind,
                    rules,
                    recoupment.effective,
                    recoupment.total,
                    detail,
                    recoupment.key,
                ):
                    continue
                after_commit(metrics.ALERTS.labels(kind).inc)
                payload = phi.safe_alert(  # the outbound scrubber: references by the payer's layout
                    AlertRaised(
                        alert_id=alert_id,
                        kind=kind,
                        payer_id=row["payer_id"],
                        reference=row["reference"],
                        amount=recoupment.total,
                        observed_on=recoupment.effective,
                        detail=detail,
                    ),
                    layout(policy.reference_layout),
                )
                message = alert_message(
                    payload, tenant_id=tenant, account_key=row["account_key"], causation_id=cause
                )
                emitted.append(Emitted(str(alert_id), message))
        return emitted
