"""A story driver for matching's engine over the in-memory ledger: each step builds the event the upstream
stage would publish (a PLB pair from intake, evidence from detection, an accrual from interest, a staff action)
and delivers it as the stage's handler does. Delivery claims the event id first, as ``shared.stream`` does, so
a redelivered event yields its recorded outputs and changes nothing.

Imported by the unit tests of this folder as ``matching.ledger_story`` (``tests/unit`` is on the path).
"""

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import (
    InterestAccrued,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    StaffActionRecorded,
)
from policies import config as policy_config
from services.matching import engine
from services.matching.ledger import Matching, build_stage
from services.matching.memory import InMemoryMatchingRepository
from services.matching.records import Receivable, StoredPair
from services.matching.repository import MatchingRepository
from shared import envelopes
from shared.ids import account_key, receivable_id, stable_id
from shared.messages import Outgoing
from shared.settings import Settings

D = Decimal
PAYER = "01312"  # a Medicare contractor: interest first, 19-character FCN field
PAYEE = "1234567893"


def day(text: str) -> date:
    """``"2026-08-03"`` → a date (stories read better with ISO dates)."""
    return date.fromisoformat(text)


@dataclass
class LedgerStory:
    """One tenant's matching ledger in memory, fed event by event."""

    tenant: str = "tenant-story"
    settings: Settings = field(default_factory=Settings)
    repo: InMemoryMatchingRepository = field(default_factory=InMemoryMatchingRepository)
    backend: MatchingRepository | None = None
    """Another repository to drive instead (the PostgreSQL one, to prove both keep the same semantics); the
    inspection helpers below read ``repo`` only."""
    published: list[Outgoing] = field(default_factory=list)
    processed: dict[UUID, list[Outgoing]] = field(default_factory=dict)
    _ordinal: int = 0

    @property
    def account(self) -> str:
        """The provider–payer account every event of the story belongs to."""
        return account_key(self.tenant, PAYER, PAYEE)

    @cached_property
    def matching(self) -> Matching:
        """The stage over this story's ledger, built as the service builds it."""
        repo: MatchingRepository = self.repo if self.backend is None else self.backend
        return build_stage(self.settings, policy_config.resolver(self.settings), repo)

    def envelope(self, payload: Any, event_id: UUID, event_type: str) -> Envelope[Any]:
        """Wrap a payload as the upstream stage would."""
        return envelopes.build(
            payload,
            event_id=event_id,
            event_type=event_type,
            tenant_id=self.tenant,
            account_key=self.account,
            causation_id="story",
        )

    async def deliver(self, env: Envelope[Any]) -> list[Outgoing]:
        """Run the handler for one event once; a redelivery yields what the first delivery published."""
        if env.event_id in self.processed:  # published again, as the stage re-publishes recorded outputs
            self.published += self.processed[env.event_id]
            return self.processed[env.event_id]
        payload = env.payload
        if isinstance(payload, ProviderAdjustmentReceived):
            outputs = await engine.on_adjustment(self.matching, env)
        elif isinstance(payload, OverpaymentDetected):
            outputs = await engine.on_overpayment(self.matching, env)
        elif isinstance(payload, StaffActionRecorded):
            outputs = await engine.on_staff_action(self.matching, env)
        else:
            outputs = await engine.on_interest(self.matching, env)
        self.processed[env.event_id] = outputs
        self.published += outputs
        return outputs

    # --- the events of a story ----------------------------------------------------------------------------

    def pair_event(
        self,
        code: str,
        reference: str | None,
        amount: str,
        paid_on: str,
        *,
        trace: str = "EFT1",
        remittance: UUID | None = None,
        ordinal: int | None = None,
        pair_index: int = 1,
    ) -> Envelope[ProviderAdjustmentReceived]:
        """A PLB pair as intake publishes it (one remittance per trace number unless given)."""
        if ordinal is None:
            self._ordinal += 1
            ordinal = self._ordinal
        adj = ProviderAdjustmentReceived(
            remittance_id=remittance or stable_id("remittance", self.tenant, trace),
            payer_id=PAYER,
            trace_number=trace,
            payment_date=day(paid_on),
            segment_ordinal=ordinal,
            pair_index=pair_index,
            provider_identifier=PAYEE,
            fiscal_period_date=day(paid_on),
            reason_code=code,
            reference=reference,
            amount=D(amount),
        )
        event_id = stable_id("pair", self.tenant, trace, ordinal, pair_index)
        return self.envelope(adj, event_id, "ProviderAdjustmentReceived")

    async def pair(
        self, code: str, reference: str | None, amount: str, paid_on: str, **kw: Any
    ) -> list[Outgoing]:
        """Deliver one PLB pair."""
        return await self.deliver(self.pair_event(code, reference, amount, paid_on, **kw))

    def evidence_event(
        self,
        reference: str,
        principal: str,
        determined: str,
        *,
        evidence: str | None = None,
        channel: str = "deferral",
        source: str = "TRN EFT1 PLB",
        netted_in: UUID | None = None,
        claims: tuple[str, ...] = (),
        merged: tuple[str, ...] = (),
        duplicate: bool = False,
        original_payment_date: str | None = None,
        identified_on: str | None = None,
        rid: UUID | None = None,
    ) -> Envelope[OverpaymentDetected]:
        """Detection's evidence of an overpayment (``principal`` is the merged principal so far)."""
        op = OverpaymentDetected(
            receivable_id=rid or self.rid(reference),
            payer_id=PAYER,
            reference=reference,
            rule="story",
            evidence_channel=channel,
            evidence_amount=D(evidence or principal),
            principal=D(principal),
            determination_date=day(determined),
            policy="medicare",
            source=source,
            claim_references=claims,
            netted_in_remittance=netted_in,
            duplicate=duplicate,
            original_payment_date=None if original_payment_date is None else day(original_payment_date),
            identified_on=None if identified_on is None else day(identified_on),
            merged_receivables=tuple(self.rid(r) for r in merged),
        )
        event_id = stable_id("evidence", self.tenant, reference, principal, determined, source, merged)
        return self.envelope(op, event_id, "OverpaymentDetected")

    async def evidence(self, reference: str, principal: str, determined: str, **kw: Any) -> list[Outgoing]:
        """Deliver detection's evidence."""
        return await self.deliver(self.evidence_event(reference, principal, determined, **kw))

    async def deferral(self, reference: str, amount: str, paid_on: str, **kw: Any) -> list[Outgoing]:
        """A negative WO and the receivable detection opens for it (what one remittance does)."""
        outputs = await self.pair("WO", reference, f"-{amount}", paid_on, **kw)
        return outputs + await self.evidence(reference, amount, paid_on, source=f"deferral {reference}")

    def interest_event(
        self, reference: str, period: int, start: str, end: str, amount: str, *, version: int = 1
    ) -> Envelope[InterestAccrued]:
        """The interest stage's accrual (or signed correction) of one period."""
        accrual = InterestAccrued(
            receivable_id=self.rid(reference),
            payer_id=PAYER,
            reference=reference,
            policy="medicare",
            period_number=period,
            period_start=day(start),
            period_end=day(end),
            principal_basis=D("0.00"),
            annual_rate=D("0.115"),
            amount=D(amount),
            version=version,
        )
        event_id = stable_id("interest", self.tenant, reference, period, version)
        return self.envelope(accrual, event_id, "InterestAccrued")

    async def interest(
        self, reference: str, period: int, start: str, end: str, amount: str, **kw: Any
    ) -> list[Outgoing]:
        """Deliver an accrual."""
        return await self.deliver(self.interest_event(reference, period, start, end, amount, **kw))

    async def staff(
        self, kind: str, reference: str, effective: str, amount: str | None = None, outcome: str | None = None
    ) -> list[Outgoing]:
        """A staff action recorded with ``offsetstream action``."""
        action = StaffActionRecorded(
            action_id=stable_id("action", self.tenant, kind, reference, effective, amount),
            kind=kind,
            payer_id=PAYER,
            payee_id=PAYEE,
            reference=reference,
            effective_date=day(effective),
            amount=None if amount is None else D(amount),
            outcome=outcome,
            entered_by="staff-1",
        )
        return await self.deliver(self.envelope(action, action.action_id, "StaffActionRecorded"))

    # --- what the ledger says -----------------------------------------------------------------------------

    def rid(self, reference: str) -> UUID:
        """The receivable id detection gives a reference."""
        return receivable_id(self.tenant, PAYER, reference)

    def receivable(self, reference: str) -> Receivable:
        """The receivable of a reference as stored."""
        found = self.repo.receivables.get((self.tenant, self.rid(reference)))
        assert found is not None, f"no receivable {reference}"
        return found

    def stored_pairs(self) -> list[StoredPair]:
        """Every PLB pair of the story in payment order."""
        return sorted(
            (p for (t, _), p in self.repo.pairs.items() if t == self.tenant),
            key=lambda p: (p.payment_date, p.segment_ordinal, p.pair_index),
        )

    def pairs(self) -> list[tuple[str, str, Decimal]]:
        """(code, bucket, unmatched) of every pair, as staff's work queue view shows them."""
        return [(p.reason_code, p.bucket, p.unmatched_amount) for p in self.stored_pairs()]

    def history(self, reference: str) -> list[str]:
        """The receivable's timeline, change by change."""
        rid = self.rid(reference)
        return [h.change for h in self.repo.history.values() if h.receivable_id == rid]

    def allocation_kinds(self) -> list[str]:
        """The kind of every allocation with money on it."""
        return [a.kind for a in self.repo.allocations.values() if a.total != 0]

    def event_types(self, outputs: list[Outgoing] | None = None) -> list[str]:
        """The event type of each output (all published so far by default)."""
        return [str(_envelope(out)["event_type"]) for out in (self.published if outputs is None else outputs)]

    def facts(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(event type, event id, payload) of everything published: what consumers see, without the time of
        publication."""
        return [
            (str(e["event_type"]), str(e["event_id"]), dict(e["payload"]))
            for e in map(_envelope, self.published)
        ]

    def payloads(self, event_type: str, outputs: list[Outgoing] | None = None) -> list[dict[str, Any]]:
        """The payloads of the outputs of one event type, as consumers read them (JSON)."""
        found = [_envelope(out) for out in (self.published if outputs is None else outputs)]
        return [dict(env["payload"]) for env in found if env["event_type"] == event_type]


def _envelope(out: Outgoing) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(out.value)
    return value
