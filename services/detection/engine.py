"""Detection's orchestration: what each claim, PLB pair and letter does to the evidence and its receivable, and
the reversal check of the timer. Pure rules are ``domain`` and the rule plugins, SQL is the ``store``."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any, TypeVar

import asyncpg

from contracts.envelope import Envelope
from contracts.events import (
    AlertRaised,
    ClaimPaymentReceived,
    LetterReceived,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
)
from contracts.topics import OVERPAYMENTS
from policies import config as policy_config
from policies.config import PolicyResolver
from services.detection import domain, identity, metrics
from services.detection.store import DetectionStore
from shared import envelopes, outbox
from shared.alerts import alert_message
from shared.effects import after_commit
from shared.ids import stable_id
from shared.messages import FailedInput, Outgoing, Rejected
from shared.settings import Settings

SERVICE = "detection"
T = TypeVar("T")


@dataclass(frozen=True)
class Detector:
    """Everything detection's handlers need, resolved once when the stage is built."""

    settings: Settings
    policies: PolicyResolver[Any]
    store: DetectionStore
    rules: Mapping[str, domain.DetectionRule]

    def _run_rules(self, hook: str, *args: Any) -> list[domain.Evidence]:
        found: list[domain.Evidence] = []
        for name, rule in self.rules.items():
            try:
                found += getattr(rule, hook)(*args)
            except Exception as exc:
                raise Rejected(
                    "plugin_error", f"detection rule {name!r} raised {type(exc).__name__}"
                ) from exc
        return found

    def adjustment_evidence(
        self, tenant: str, adjustment: ProviderAdjustmentReceived
    ) -> list[domain.Evidence]:
        """Run the PLB rules with the reference layout of the payer policy configured for this tenant's payer,
        the same one matching reads the later recoupment with."""
        layout = _policy(lambda: self.policies.reference_layout(tenant, adjustment.payer_id))
        return self._run_rules("on_adjustment", adjustment, layout)

    async def on_inputs(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[Any]]
    ) -> list[list[Outgoing]]:
        """A batch's claims, PLB pairs and letters, mixed in the order consumed (intake publishes a
        transaction's claims and then its PLB pairs, so the two alternate in a batch), in a constant number of
        statements for the whole batch: the claims are remembered, their reversals tracked and their history
        read together (:meth:`_claim_items`); every input's evidence is then placed, in order, and recorded
        at once (:meth:`_record`), so each input sees the evidence of those before it, as one by one."""
        claims = [
            (position, e) for position, e in enumerate(envs) if isinstance(e.payload, ClaimPaymentReceived)
        ]
        try:
            claimed = await self._claim_items(conn, [e for _, e in claims])
        except FailedInput as failed:
            raise failed.at(claims[failed.position][0]) from failed.cause
        found = {position: item for (position, _), item in zip(claims, claimed, strict=True)}
        items: list[identity.Item] = []
        for position, env in enumerate(envs):
            payload = env.payload
            try:
                if isinstance(payload, ClaimPaymentReceived):
                    items.append(found[position])
                elif isinstance(payload, ProviderAdjustmentReceived):
                    evidence = self.adjustment_evidence(env.tenant_id, payload)
                    items.append(self._item(env, payload.payer_id, evidence))
                elif isinstance(payload, LetterReceived):
                    items.append(self._item(env, payload.payer_id, self._run_rules("on_letter", payload)))
                else:
                    raise TypeError(f"detection has no rule for {type(payload).__name__} events")
            except Exception as exc:
                raise FailedInput(position, exc) from exc
        return await self._record(conn, envs, items)

    async def _claim_items(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[ClaimPaymentReceived]]
    ) -> list[identity.Item]:
        """Remember a batch's claims, track reversals, and run the claim rules against each claim's history,
        in a constant number of statements (claims in, reversals noted and paired, related claims out); each
        claim sees the batch's claims before it, not those after, as if they came one by one."""
        if not envs:
            return []
        store = self.store
        saved = await store.save_claims(conn, envs)
        reversals = [e for e in envs if e.payload.status_code == domain.REVERSAL_STATUS]
        noted = await store.note_reversals(conn, reversals)
        at = {e.event_id: position for position, e in enumerate(envs)}
        await store.pair_reversals(
            conn,
            [(p, e) for p, e in enumerate(envs) if e.payload.status_code != domain.REVERSAL_STATUS],
            [(at[e.event_id], e) for e in reversals if e.event_id in noted],
        )
        related = await store.related_claims(conn, envs, saved)
        items: list[identity.Item] = []
        for position, (env, (prior, later)) in enumerate(zip(envs, related, strict=True)):
            try:
                found = self._run_rules("on_claim", env.payload, prior)
                if later:
                    found += self._run_rules("on_claim_arriving_late", env.payload, later)
                items.append(self._item(env, env.payload.payer_id, found))
            except Exception as exc:
                raise FailedInput(position, exc) from exc
        return items

    def _item(self, source: Envelope[Any], payer_id: str, evidence: list[domain.Evidence]) -> identity.Item:
        """An input's evidence with the policy a receivable it opens is recorded under (asked only when there
        is evidence: a payer whose policy is not installed rejects only inputs that find an overpayment)."""
        tenant = source.tenant_id
        policy = _policy(lambda: self.policies.policy_name(tenant, payer_id)) if evidence else ""
        return identity.Item(tenant, source.account_key, payer_id, policy, tuple(evidence))

    async def _record(
        self, conn: asyncpg.Connection, sources: Sequence[Envelope[Any]], items: Sequence[identity.Item]
    ) -> list[list[Outgoing]]:
        """Store a batch's new evidence, join, open or merge receivables as it proves (:mod:`identity`), and
        announce each piece's merged state: a constant number of statements whatever the batch's size."""
        if not any(item.evidence for item in items):
            return [[] for _ in items]
        snapshot = await self.store.load_identity(conn, identity.wanted(items))
        placement = identity.place_all(snapshot, items)
        await self.store.write_identity(conn, placement)
        outputs: list[list[Outgoing]] = []
        for source, item, placed in zip(sources, items, placement.placed, strict=True):
            outputs.append([_announced(source, item, p) for p in placed])
            for p in placed:
                after_commit(metrics.OVERPAYMENTS.labels(p.evidence.rule).inc)
                after_commit(
                    partial(metrics.OVERPAYMENT_DOLLARS.labels(p.evidence.rule).inc, float(p.evidence.amount))
                )
                for _ in p.absorbed:
                    after_commit(metrics.MERGES.inc)
        return outputs

    async def check_reversals(self, conn: asyncpg.Connection, day: date) -> None:
        """Queue one alert (outbox) for every reversal still without its correction after the configured
        days."""
        days = self.settings.reversal_correction_days
        async with conn.transaction():
            for rev in await self.store.uncorrected_reversals(conn, day - timedelta(days=days)):
                alert = AlertRaised(
                    alert_id=stable_id(rev.claim_event_id, "reversal_without_correction"),
                    kind="reversal_without_correction",
                    payer_id=rev.payer_id,
                    reference=rev.icn,
                    amount=rev.amount,
                    observed_on=day,
                    detail=f"claim {rev.icn or '(no ICN)'} reversed on {rev.reversed_on} for "
                    f"{rev.amount}; no correction after {days} days",
                )
                message = alert_message(
                    alert,
                    tenant_id=rev.tenant_id,
                    account_key=rev.account_key,
                    causation_id=str(rev.claim_event_id),
                )
                if await outbox.add(conn, SERVICE, str(alert.alert_id), message):
                    after_commit(metrics.ALERTS.labels(alert.kind).inc)


def _policy(ask: Callable[[], T]) -> T:
    """Ask the tenant's payer policy configuration; a policy that is not installed rejects the message."""
    try:
        return ask()
    except policy_config.PolicyConfigError as exc:
        raise Rejected("unknown_policy", str(exc)) from exc


def _announced(source: Envelope[Any], item: identity.Item, placed: identity.Placed) -> Outgoing:
    """The ``OverpaymentDetected`` of one piece of evidence: the receivable it joined and its merged state.

    Detection is the one owner of receivable identity: every claim, PLB pair and letter of an account reaches
    it on one partition (all three topics are keyed by the account), so whatever order evidence arrives in,
    the identifiers it names decide; matching moves the recoveries of ``merged_receivables`` over when it
    reads the merge."""
    ev = placed.evidence
    payload = OverpaymentDetected(
        receivable_id=placed.receivable_id,
        payer_id=item.payer_id,
        reference=ev.reference,
        rule=ev.rule,
        evidence_channel=ev.channel,
        evidence_amount=ev.amount,
        principal=placed.principal,
        determination_date=placed.determination_date,
        policy=item.policy,
        source=ev.source,
        claim_references=ev.claim_references,
        patient_control_numbers=ev.patient_control_numbers,
        trace_numbers=ev.trace_numbers,
        original_payment_date=ev.original_payment_date,
        identified_on=ev.evidence_date if ev.channel == "provider_identified" else None,
        duplicate=ev.rule == "duplicate_payment",
        netted_in_remittance=ev.netted_in_remittance,
        merged_receivables=placed.absorbed,
    )
    return Outgoing.event(
        OVERPAYMENTS,
        envelopes.build(
            payload,
            event_id=stable_id(ev.evidence_id, "OverpaymentDetected"),
            event_type="OverpaymentDetected",
            tenant_id=item.tenant_id,
            account_key=item.account_key,
            causation_id=str(source.event_id),
        ),
    )
