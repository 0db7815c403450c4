"""The detection stage: claims, PLB pairs and letters in; evidence of overpayments, merged per reference, out.

A timer also raises an alert for each reversal whose correction has not arrived within the configured days.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import (
    AlertRaised,
    ClaimPaymentReceived,
    LetterReceived,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
)
from contracts.money import to_money
from policies import config as policy_config
from services.detection import domain, metrics, store
from shared import envelopes, outbox, plugins
from shared.clock import today
from shared.ids import receivable_id, stable_id
from shared.stream import Incoming, Outgoing, Rejected, Stage

log = logging.getLogger(__name__)

stage = Stage("detection")
app = stage.app
RULES: dict[str, domain.DetectionRule] = plugins.load_plugins(plugins.DETECTION_RULES)
POLICY = policy_config.resolver(stage.settings)
OVERPAYMENTS = "remit.overpayments.v1"
ALERTS = "remit.alerts.v1"
T = TypeVar("T")


def _run_rules(hook: str, *args: Any) -> list[domain.Evidence]:
    found: list[domain.Evidence] = []
    for name, rule in RULES.items():
        try:
            found += getattr(rule, hook)(*args)
        except Exception as exc:
            raise Rejected("plugin_error", f"detection rule {name!r} raised {type(exc).__name__}") from exc
    return found


def _policy(ask: Callable[[], T]) -> T:
    """Ask the tenant's payer policy configuration; a policy that is not installed rejects the message."""
    try:
        return ask()
    except policy_config.PolicyConfigError as exc:
        raise Rejected("unknown_policy", str(exc)) from exc


def adjustment_evidence(tenant: str, adjustment: ProviderAdjustmentReceived) -> list[domain.Evidence]:
    """Run the PLB rules with the reference layout of the payer policy configured for this tenant's payer,
    the same one matching reads the later recoupment with."""
    layout = _policy(lambda: POLICY.reference_layout(tenant, adjustment.payer_id))
    return _run_rules("on_adjustment", adjustment, layout)


async def _record(
    conn: asyncpg.Connection, source: Envelope[Any], payer_id: str, evidence: list[domain.Evidence]
) -> list[Outgoing]:
    """Store new evidence, re-merge its receivable, and announce the merged state."""
    outputs: list[Outgoing] = []
    if not evidence:
        return outputs
    tenant, account = source.tenant_id, source.account_key
    policy = _policy(lambda: POLICY.policy_name(tenant, payer_id))
    await store.lock_account(conn, tenant, account)
    for ev in evidence:
        if await store.evidence_recorded(conn, tenant, ev.evidence_id):
            continue
        rid, absorbed = await _identify(conn, tenant, account, payer_id, ev)
        await store.add_evidence(conn, tenant, rid, ev)
        known = await store.evidence_of(conn, tenant, rid)
        principal = to_money(domain.merged_principal((c, s, a) for c, s, a, _ in known))
        determined = domain.determination_date((c, d) for c, _, _, d in known)
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
        metrics.OVERPAYMENTS.labels(ev.rule).inc()
        metrics.OVERPAYMENT_DOLLARS.labels(ev.rule).inc(float(ev.amount))
    return outputs


async def _identify(
    conn: asyncpg.Connection, tenant: str, account: str, payer_id: str, ev: domain.Evidence
) -> tuple[UUID, tuple[UUID, ...]]:
    """Which receivable this evidence belongs to, and which receivables it proves to be that same debt.

    Detection is the one owner of receivable identity: every claim, PLB pair and letter of an account reaches
    it on one partition (all three topics are keyed by the account), so whatever order evidence arrives in,
    the identifiers it names decide. Evidence naming no known identifier opens a receivable under its own
    reference; naming one receivable's, it joins it; naming several, it merges them into the survivor
    (:func:`domain.survivor`), and matching moves their recoveries over when it reads the merge."""
    keys = domain.identity_keys(ev)
    found = await store.owners(conn, tenant, account, keys)
    if not found:
        rid = receivable_id(tenant, payer_id, ev.reference)
        await store.add_aliases(conn, tenant, account, rid, keys)
        return rid, ()
    keep = domain.survivor(found)
    absorbed = tuple(sorted((r.receivable_id for r in found if r != keep), key=str))
    for other in absorbed:
        await store.merge(conn, tenant, other, keep.receivable_id)
        metrics.MERGES.inc()
    await store.add_aliases(conn, tenant, account, keep.receivable_id, keys)
    return keep.receivable_id, absorbed


async def on_claim(conn: asyncpg.Connection, env: Envelope[ClaimPaymentReceived]) -> list[Outgoing]:
    """Remember the claim, track reversals, and run the claim rules against its history."""
    claim, tenant, account = env.payload, env.tenant_id, env.account_key
    await store.save_claim(conn, tenant, account, env.event_id, claim)
    if claim.status_code == domain.REVERSAL_STATUS:
        await store.note_reversal(conn, tenant, account, env.event_id, claim)
    else:
        await store.pair_reversal(conn, tenant, account, env.event_id, claim)
    prior, later = await store.related_claims(conn, tenant, account, env.event_id, claim)
    found = _run_rules("on_claim", claim, prior)
    if later:
        found += _run_rules("on_claim_arriving_late", claim, later)
    return await _record(conn, env, claim.payer_id, found)


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Dispatch by topic."""
    if incoming.topic == "remit.claim-payments.v1":
        return await on_claim(conn, parse_envelope(incoming.value, ClaimPaymentReceived))
    if incoming.topic == "remit.letters.v1":
        letter = parse_envelope(incoming.value, LetterReceived)
        return await _record(conn, letter, letter.payload.payer_id, _run_rules("on_letter", letter.payload))
    adj = parse_envelope(incoming.value, ProviderAdjustmentReceived)
    return await _record(conn, adj, adj.payload.payer_id, adjustment_evidence(adj.tenant_id, adj.payload))


async def check_reversals() -> None:
    """Alert once for every reversal still without its correction after the configured days."""
    day = today(stage.settings)
    cutoff = day - timedelta(days=stage.settings.reversal_correction_days)
    pool = await stage.pool()
    async with pool.acquire() as conn, conn.transaction():
        for row in await store.uncorrected_reversals(conn, cutoff):
            alert = AlertRaised(
                alert_id=stable_id(row["claim_event_id"], "reversal_without_correction"),
                kind="reversal_without_correction",
                payer_id=row["payer_id"],
                reference=row["icn"],
                amount=row["amount"],
                observed_on=day,
                detail=f"claim {row['icn'] or '(no ICN)'} reversed on {row['reversed_on']} for {row['amount']}; "
                f"no correction after {stage.settings.reversal_correction_days} days",
            )
            message = Outgoing.event(
                ALERTS,
                envelopes.build(
                    alert,
                    event_id=alert.alert_id,
                    event_type="AlertRaised",
                    tenant_id=row["tenant_id"],
                    account_key=row["account_key"],
                    causation_id=str(row["claim_event_id"]),
                ),
            )
            if await outbox.add(conn, stage.service, str(alert.alert_id), message):
                metrics.ALERTS.labels(alert.kind).inc()
    await outbox.flush(stage)


stage.every(stage.settings.interest_tick_seconds, check_reversals, "reversal check")
stage.consume(["remit.claim-payments.v1", "remit.provider-adjustments.v1", "remit.letters.v1"], handle)
