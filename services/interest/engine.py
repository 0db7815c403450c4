"""The accrual engine: load the receivables a batch names, let ``ledger`` decide, write once, say what changed.

Both halves of accrual run the same decision (:func:`ledger.advance`) under row locks:
- event-driven (a ``ReceivableChanged``, or a repayment schedule staff recorded), a batch at a time: up to each
  change's business date — the handler's outputs are exactly-once through ``ops.processed_events``;
- time-driven (the tick): up to today, for receivables whose next period has come due — its events go through
  the transactional outbox (``shared.outbox``) in the same transaction as the ledger rows.
A batch costs a constant number of statements (five reads, at most seven writes) whatever its size: every row it
needs is read in one query per table, each input is applied in memory in order (so inputs see each other's
effects exactly as one by one), and every changed row is written once.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope
from contracts.events import ReceivableChanged, StaffActionRecorded
from policies.config import PolicyConfigError, PolicyResolver
from policies.facts import ErsPlan
from policies.payers import PayerPolicy
from services.interest import domain, metrics
from services.interest.ledger import (
    Account,
    Emitted,
    Key,
    Outcome,
    Recorded,
    Request,
    advance,
    installments_json,
)
from services.interest.store import InterestStore, Writes
from shared import outbox
from shared.effects import after_commit
from shared.ids import receivable_id
from shared.messages import FailedInput, Outgoing, Rejected

log = logging.getLogger(__name__)

SERVICE = "interest"


@dataclass(frozen=True)
class Engine:
    """Stateless apart from the resolved policies: dropping it and building a new one changes nothing."""

    resolver: PolicyResolver[PayerPolicy]
    store: InterestStore

    async def on_changes(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[ReceivableChanged]]
    ) -> list[list[Outgoing]]:
        """Record a batch's receivable changes and recompute each receivable up to each change's business date,
        in order (inside the caller's transaction). A change whose payer policy is not installed is rejected
        (``unknown_policy``)."""
        requests = [
            Request(
                (env.tenant_id, env.payload.receivable_id),
                env.payload.effective_date,
                str(env.event_id),
                recorded=Recorded(env.account_key, env.event_id, env.event_type, env.payload),
            )
            for env in envs
        ]
        return [[e.message for e in emitted] for emitted in await self._named(conn, requests)]

    async def on_change(self, conn: asyncpg.Connection, env: Envelope[ReceivableChanged]) -> list[Outgoing]:
        """One receivable change (a batch of one)."""
        [outputs] = await self.on_changes(conn, [env])
        return outputs

    async def on_staff_actions(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[StaffActionRecorded]]
    ) -> list[list[Outgoing]]:
        """Record extended repayment schedules and recompute their receivables (other staff actions reach
        interest as receivable changes from matching, so they are not this stage's to read).

        The plan is stored even when the receivable has not reached this stage yet (the two topics are not
        ordered with each other): the receivable's first change then finds it.
        """
        requests: list[Request | None] = []
        for env in envs:
            action = env.payload
            if action.kind != "repayment_schedule_granted" or action.schedule is None:
                requests.append(None)
                continue
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
            requests.append(
                Request((env.tenant_id, rid), action.effective_date, str(env.event_id), plan=plan)
            )
        asked = [r for r in requests if r is not None]
        at = [position for position, r in enumerate(requests) if r is not None]
        try:
            done = iter(await self._named(conn, asked))
        except FailedInput as exc:
            raise FailedInput(at[exc.position], exc.cause) from exc.cause
        return [[] if r is None else [e.message for e in next(done)] for r in requests]

    async def on_staff_action(
        self, conn: asyncpg.Connection, env: Envelope[StaffActionRecorded]
    ) -> list[Outgoing]:
        """One staff action (a batch of one)."""
        [outputs] = await self.on_staff_actions(conn, [env])
        return outputs

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
        """Post whatever makes the ledger equal the closed form up to ``through``; refresh timeline and alerts.
        Raises ``PolicyConfigError`` when the payer's policy is not installed."""
        try:
            [emitted] = await self._apply(conn, [Request((tenant, rid), through, cause)])
        except FailedInput as exc:
            raise exc.cause from None
        return emitted

    async def _named(self, conn: asyncpg.Connection, requests: Sequence[Request]) -> list[list[Emitted]]:
        """:meth:`_apply`, a policy that is not installed rejecting the input that needed it."""
        try:
            return await self._apply(conn, requests)
        except FailedInput as exc:
            if isinstance(exc.cause, PolicyConfigError):
                rejected = Rejected("unknown_policy", str(exc.cause))
                raise FailedInput(exc.position, rejected) from exc.cause
            raise

    async def _apply(self, conn: asyncpg.Connection, requests: Sequence[Request]) -> list[list[Emitted]]:
        """Load every receivable the requests name, apply them in order in memory, write what changed once.
        An input that fails is named (:class:`FailedInput`) before anything is written."""
        if not requests:
            return []
        loaded = await self.store.load(conn, [r.key for r in requests])
        accounts = dict(loaded)
        outcomes: list[Outcome] = []
        for position, request in enumerate(requests):
            try:
                accounts[request.key], outcome = advance(accounts[request.key], request, self.resolver)
            except Exception as exc:
                raise FailedInput(position, exc) from exc
            outcomes.append(outcome)
        await self.store.write(conn, writes(loaded, accounts, requests, outcomes))
        for outcome in outcomes:
            for p in outcome.postings:
                after_commit(partial(metrics.count_posting, p.policy, p.posting.version, p.posting.amount))
            for a in outcome.alerts:
                after_commit(metrics.ALERTS.labels(a.kind).inc)
        return [list(o.emitted) for o in outcomes]


def writes(
    loaded: dict[Key, Account],
    final: dict[Key, Account],
    requests: Sequence[Request],
    outcomes: Sequence[Outcome],
) -> Writes:
    """What a batch must write: each receivable row and plan that changed, in its final state, once; the rows
    it added, in order; each recomputed receivable's latest timeline."""
    timelines: dict[Key, Sequence[tuple[str, date]]] = {}
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome.timeline is not None:
            timelines[request.key] = outcome.timeline
    return Writes(
        rows=[
            (a.row, loaded[key].row is not None)
            for key, a in sorted(final.items())
            if a.row is not None and a.row != loaded[key].row
        ],
        history=[h for o in outcomes for h in o.history],
        postings=[p for o in outcomes for p in o.postings],
        alerts=[a for o in outcomes for a in o.alerts],
        timelines=sorted(timelines.items()),
        plans=[
            (key, a.plan)
            for key, a in sorted(final.items())
            if a.plan is not None and not same_plan(a.plan, loaded[key].plan)
        ],
    )


def same_plan(plan: ErsPlan, kept: ErsPlan | None) -> bool:
    """True when ``kept`` is this plan as stored (granted the same day, the same installments)."""
    return kept is not None and (plan.granted_on, installments_json(plan)) == (
        kept.granted_on,
        installments_json(kept),
    )
