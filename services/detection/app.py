"""The detection stage: claim payments and PLB pairs in, evidence of overpayments (merged per reference) out."""

from collections.abc import Sequence
from typing import Any

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import ClaimPaymentReceived, OverpaymentDetected, ProviderAdjustmentReceived
from contracts.money import to_money
from services.detection import domain, metrics, store
from shared import envelopes, plugins
from shared.ids import receivable_id, stable_id
from shared.stream import Incoming, Outgoing, Rejected, Stage

stage = Stage("detection")
app = stage.app
RULES: dict[str, domain.DetectionRule] = plugins.load_plugins(plugins.DETECTION_RULES)
OVERPAYMENTS = "remit.overpayments.v1"


def _run_rules(call: str, *args: Any) -> list[domain.Evidence]:
    found: list[domain.Evidence] = []
    for name, rule in RULES.items():
        try:
            found += getattr(rule, call)(*args)
        except Exception as exc:
            raise Rejected("plugin_error", f"detection rule {name!r} raised {type(exc).__name__}") from exc
    return found


async def _record(
    conn: asyncpg.Connection, source: Envelope[Any], payer_id: str, evidence: list[domain.Evidence]
) -> list[Outgoing]:
    outputs = []
    tenant, account = source.tenant_id, source.account_key
    policy = stage.settings.policy_for(payer_id)
    for ev in evidence:
        rid = receivable_id(tenant, payer_id, ev.reference)
        if not await store.add_evidence(conn, tenant, rid, ev):
            continue
        known = await store.evidence_of(conn, tenant, rid)
        principal = to_money(domain.merged_principal((c, a) for c, a, _ in known))
        determined = domain.determination_date((c, d) for c, _, d in known)
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


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Dispatch by topic: claims are remembered and checked; PLB pairs are checked."""
    if incoming.topic == "remit.claim-payments.v1":
        claim_env = parse_envelope(incoming.value, ClaimPaymentReceived)
        claim = claim_env.payload
        await store.save_claim(conn, claim_env.tenant_id, claim_env.account_key, claim_env.event_id, claim)
        prior = await store.related_claims(
            conn, claim_env.tenant_id, claim_env.account_key, claim_env.event_id, claim
        )
        return await _record(conn, claim_env, claim.payer_id, _run_rules("on_claim", claim, prior))
    adj_env = parse_envelope(incoming.value, ProviderAdjustmentReceived)
    adjustment = adj_env.payload
    return await _record(conn, adj_env, adjustment.payer_id, _run_rules("on_adjustment", adjustment))


stage.consume(["remit.claim-payments.v1", "remit.provider-adjustments.v1"], handle)
