"""Detection's orchestration: what each claim, PLB pair and letter does to the evidence and its receivable, and
the reversal check of the timer. Pure rules are ``domain`` and the rule plugins, SQL is the ``store``."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope
from contracts.events import (
    AlertRaised,
    ClaimPaymentReceived,
    LetterReceived,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
)
from contracts.money import to_money
from contracts.topics import OVERPAYMENTS
from policies import config as policy_config
from policies.config import PolicyResolver
from services.detection import domain, metrics
from services.detection.store import DetectionStore
from shared import envelopes, outbox
from shared.alerts import alert_message
from shared.effects import after_commit
from shared.ids import receivable_id, stable_id
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

    async def on_claims(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[ClaimPaymentReceived]]
    ) -> list[list[Outgoing]]:
        """Remember a batch's claims, track reversals, and run the claim rules against each claim's history,
        in a constant number of statements (claims in, reversals noted and paired, related claims out); each
        claim sees the batch's claims before it, not those after, as if they came one by one. Evidence is
        then recorded claim after claim, in order (:meth:`_record`)."""
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
        outputs: list[list[Outgoing]] = []
        for position, (env, (prior, later)) in enumerate(zip(envs, related, strict=True)):
            try:
                found = self._run_rules("on_claim", env.payload, prior)
                if later:
                    found += self._run_rules("on_claim_arriving_late", env.payload, later)
                outputs.append(await self._record(conn, env, env.payload.payer_id, found))
            except Exception as exc:
                raise FailedInput(position, exc) from exc
        return outputs

    async def on_adjustment(
        self, conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived]
    ) -> list[Outgoing]:
        """Run the PLB rules on a provider-level adjustment pair."""
        evidence = self.adjustment_evidence(env.tenant_id, env.payload)
        return await self._record(conn, env, env.payload.payer_id, evidence)

    async def on_letter(self, conn: asyncpg.Connection, env: Envelope[LetterReceived]) -> list[Outgoing]:
        """A demand letter or a provider-identified overpayment entered by staff."""
        return await self._record(conn, env, env.payload.payer_id, self._run_rules("on_letter", env.payload))

    async def _record(
        self, conn: asyncpg.Connection, source: Envelope[Any], payer_id: str, evidence: list[domain.Evidence]
    ) -> list[Outgoing]:
        """Store new evidence, re-merge its receivable, and announce the merged state."""
        outputs: list[Outgoing] = []
        if not evidence:
            return outputs
        tenant, account, store = source.tenant_id, source.account_key, self.store
        policy = _policy(lambda: self.policies.policy_name(tenant, payer_id))
        await store.lock_account(conn, tenant, account)
        for ev in evidence:
            if await store.evidence_recorded(conn, tenant, ev.evidence_id):
                continue
            rid, absorbed = await self._identify(conn, tenant, account, payer_id, ev)
            await store.add_evidence(conn, tenant, rid, ev)
            known = await store.evidence_of(conn, tenant, rid)
            principal = to_money(domain.merged_principal((k.channel, k.subject, k.amount) for k in known))
            determined = domain.determination_date((k.channel, k.evidence_date) for k in known)
            await store.upsert_receivable(
                conn, tenant, rid, account, payer_id, ev.reference, policy, principal, determined
            )
            payload = OverpaymentDetected(
                receivable_id=rid,
                payer_id=payer_id,
                reference=ev.reference,
                rule=ev.rule,
                evidence_channel=ev.channel,
                evidence_amount=ev.amount,
                principal=principal,
                determination_date=determined,
                policy=policy,
                source=ev.source,
                claim_references=ev.claim_references,
                patient_control_numbers=ev.patient_control_numbers,
                trace_numbers=ev.trace_numbers,
                original_payment_date=ev.original_payment_date,
                identified_on=ev.evidence_date if ev.channel == "provider_identified" else None,
                duplicate=ev.rule == "duplicate_payment",
                netted_in_remittance=ev.netted_in_remittance,
                merged_receivables=absorbed,
            )
            outputs.append(
                Outgoing.event(
                    OVERPAYMENTS,
                    envelopes.build(
                        payload,
                        event_id=stable_id(ev.evidence_id, "OverpaymentDetected"),
                        event_type="OverpaymentDetected",
                        tenant_id=tenant,
                        account_key=account,
                        causation_id=str(source.event_id),
                    ),
                )
            )
            after_commit(metrics.OVERPAYMENTS.labels(ev.rule).inc)
            after_commit(partial(metrics.OVERPAYMENT_DOLLARS.labels(ev.rule).inc, float(ev.amount)))
        return outputs

    async def _identify(
        self, conn: asyncpg.Connection, tenant: str, account: str, payer_id: str, ev: domain.Evidence
    ) -> tuple[UUID, tuple[UUID, ...]]:
        """Which receivable this evidence belongs to, and which receivables it proves to be that same debt.

        Detection is the one owner of receivable identity: every claim, PLB pair and letter of an account
        reaches it on one partition (all three topics are keyed by the account), so whatever order evidence
        arrives in, the identifiers it names decide. Evidence naming no known identifier opens a receivable
        under its own reference; naming one receivable's, it joins it; naming several, it merges them into the
        survivor (:func:`domain.survivor`), and matching moves their recoveries over when it reads the merge."""
        keys = domain.identity_keys(ev)
        found = await self.store.owners(conn, tenant, account, keys)
        if not found:
            rid = receivable_id(tenant, payer_id, ev.reference)
            await self.store.add_aliases(conn, tenant, account, rid, keys)
            return rid, ()
        keep = domain.survivor(found)
        absorbed = tuple(sorted((r.receivable_id for r in found if r != keep), key=str))
        for other in absorbed:
            await self.store.merge(conn, tenant, other, keep.receivable_id)
            after_commit(metrics.MERGES.inc)
        await self.store.add_aliases(conn, tenant, account, keep.receivable_id, keys)
        return keep.receivable_id, absorbed

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
