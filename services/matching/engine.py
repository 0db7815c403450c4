"""Matching's engine: how one PLB pair, overpayment, interest posting or staff action changes the ledger.

Per account (partition key) and in order: a positive ``WO`` reduces the receivable its reference names (FCN per
the payer's reference layout, then ICN, patient control number, trace number, then a scored search that never
auto-applies below the confidence threshold); money goes to interest first. A ``WO`` without a reference is a
lump recoupment spread oldest first. What matches nothing waits in the unmatched queue and is re-matched when
its receivable appears. ``FB`` opens/applies forwarding balances (``forwarding``), ``72`` turns the paired
``WO`` into a refund acknowledgement (``refunds``), everything else is classified and recorded, never applied.
Evidence, interest and staff actions change receivables (``receivables``); money that gives way or waits by
business date is ``rematch``; the money moves they share are in ``ledger``, pure rules in ``domain``. Every
step takes the stage (:class:`~services.matching.ledger.Matching`: settings, policies, repository) and
reads and writes the ledger only through its repository (``repository``: SQL in ``store``, dictionaries in
``memory`` for unit tests); ``app`` is wiring. This module's four ``on_*`` functions are the entry points.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import Allocation, ProviderAdjustmentReceived
from policies.config import PolicyConfigError
from services.matching import decisions, domain
from services.matching.decisions import Explanation, Targets
from services.matching.forwarding import apply_forwarding, open_forwarding
from services.matching.ledger import (
    Matching,
    alert,
    announce,
    apply_money,
    offset_event,
    resplit,
)
from services.matching.receivables import on_interest, on_overpayment, on_staff_action
from services.matching.records import Receivable
from services.matching.refunds import (
    acknowledge_recorded_refund,
    acknowledge_refund,
    refund_acknowledged,
)
from services.matching.rematch import make_room
from shared.messages import Outgoing, Rejected

__all__ = ["on_adjustment", "on_interest", "on_overpayment", "on_staff_action"]

log = logging.getLogger(__name__)


async def recover(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    candidates: Sequence[tuple[str, str]],
    match_reference: str | None,
    cause: str,
) -> Explanation:
    """A positive WO: resolve its receivable(s) (by the keys its reference names, else
    :func:`decisions.from_pool`) and apply, or park it unmatched with the reason (:func:`decisions.recovered`)."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    targets = Targets((), None)
    rows: list[Receivable] = []
    if candidates:
        ids, method = await m.repo.resolve(tenant, account, candidates)
        targets = Targets(tuple(sorted(ids)), method)
        rows = await _locked_all(m, tenant, targets.ids)
        if len(rows) > 1:
            rows = sorted(rows, key=lambda r: (r.determination_date, r.reference))
    if not rows:
        pool = await m.repo.open_candidates(tenant, account)
        threshold = m.settings.match_confidence_threshold
        targets = decisions.from_pool(pool, adj.amount, match_reference, adj.payment_date, threshold)
        rows = await _locked_all(m, tenant, targets.ids)
    left = adj.amount
    named = len(rows) == 1 and targets.method != "oldest_first"
    allocations: list[Allocation] = []
    outputs: list[Outgoing] = []
    for found in rows:
        if left <= 0:
            break
        day = adj.payment_date
        row, moved = await make_room(m, env, found, left, day, f"{cause} of {day}") if named else (found, [])
        outputs += moved
        if row.balance.open <= 0:
            continue
        applied, allocation, events = await apply_money(
            m, env, env.event_id, row, left, adj.payment_date, cause
        )
        if applied.applied > 0:
            allocations.append(allocation)
            outputs += events
        left = applied.remainder
    out = decisions.recovered(allocations, left, targets, bool(rows))
    return replace(out, outputs=tuple(outputs))


async def _locked_all(m: Matching, tenant: str, ids: Sequence[UUID]) -> list[Receivable]:
    """The receivables of ``ids`` that exist, locked, in that order."""
    locked = [await m.repo.lock_receivable(tenant, rid) for rid in ids]
    return [r for r in locked if r is not None]


async def withheld(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    reference: str | None,
    candidates: Sequence[tuple[str, str]],
    cause: str,
) -> Explanation:
    """A positive WO: recover it; with a 72 on the same reference in the same remittance it acknowledges a
    refund instead — the provider's check, whether the WO's money or a refund staff already recorded."""
    adj = env.payload
    refunds = (
        await m.repo.sibling_pairs(env.tenant_id, adj.remittance_id, reference, "72") if reference else []
    )
    out = await recover(m, env, candidates, reference, cause)
    if refunds and out.allocations:
        out = decisions.refund_of_allocated(out)
        converted = await acknowledge_refund(m, env, env.event_id, out.reason)
        out = replace(out, outputs=(*out.outputs, *converted))
    if refunds and out.unmatched > 0:
        taken, allocations = await acknowledge_recorded_refund(
            m, env, env.event_id, candidates, out.unmatched
        )
        if allocations:
            out = decisions.refund_of_recorded(out, taken, allocations)
    if refunds and out.unmatched > 0 and domain.refund_pair_nets(adj.amount, [r.amount for r in refunds]):
        out = decisions.awaiting_receivable(out, reference)
    return out


async def explain(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    meaning: domain.Meaning,
    receivable: str | None,
    candidates: Sequence[tuple[str, str]],
) -> tuple[Explanation, str | None]:
    """Decide where one PLB pair's money goes (and move it): the explanation, and the key it is matched by
    (the receivable reference, or the forwarding balance's)."""
    adj = env.payload
    cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index}"
    base = Explanation(meaning.reason)
    if adj.reason_code == "WO" and adj.amount > 0:
        return await withheld(m, env, receivable, candidates, cause), receivable
    if meaning.action == "review":
        return replace(base, bucket="unmatched", unmatched=adj.amount), receivable
    if meaning.action == "forwarding_open":
        key = await open_forwarding(m, env)
        return replace(base, bucket="forwarding_balance", event_type="ForwardingBalanceOpened"), key
    if meaning.action == "forwarding_apply":
        key, why = await apply_forwarding(m, env)
        applied = replace(
            base,
            bucket="forwarding_balance",
            event_type="ForwardingBalanceApplied",
            reason=why or base.reason,
        )
        return applied, key
    if meaning.action == "deferral":
        outputs = (
            [unidentified_deferral(m, env, cause)]
            if receivable is None
            else await undo_netting(m, env, candidates)
        )
        return replace(base, bucket="deferral", outputs=tuple(outputs)), receivable
    if meaning.action == "refund":
        outputs = await refund_acknowledged(m, env, receivable, candidates) if receivable else []
        return replace(base, bucket="refund_acknowledged", outputs=tuple(outputs)), receivable
    return base, receivable


async def on_adjustment(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> list[Outgoing]:
    """Explain one PLB pair; every cent ends in exactly one bucket."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    try:
        parsed = domain.read_reference(m.policies, tenant, adj.payer_id, adj.reference)
    except PolicyConfigError as exc:
        raise Rejected("unknown_policy", str(exc)) from exc
    candidates = parsed.candidates(adj.reference)
    meaning = domain.classify(adj.reason_code, adj.amount, parsed.receivable)
    out, match_reference = await explain(m, env, meaning, parsed.receivable, candidates)
    await m.repo.save_adjustment(
        tenant,
        account,
        env.event_id,
        adj,
        match_reference=match_reference,
        match_keys=[k for _, k in candidates],
        bucket=out.bucket,
        unmatched=out.unmatched + out.awaiting,  # a refund pair's share moves to awaiting_refund below
        reason=out.reason,
        method=out.method,
        suggestion=out.suggestion,
    )
    if out.awaiting > 0:
        await m.repo.await_refund(tenant, env.event_id, out.awaiting, out.reason)
    event = offset_event(
        env, adj, env.event_id, out.bucket, out.reason, out.allocations, out.unmatched, out.event_type
    )
    return [event, *out.outputs]


def unidentified_deferral(m: Matching, env: Envelope[ProviderAdjustmentReceived], cause: str) -> Outgoing:
    """A negative WO without a reference: the payer adds money back now and will recover it later against an
    overpayment it does not name, so detection opened nothing. Staff must identify that overpayment (or the
    later recoupment lands unexplained): alert once per PLB pair, keyed by its trace number, never by claim
    or patient data. The pair also stays in the work queue (``views.unmatched``)."""
    adj = env.payload
    deferred = -adj.amount
    return alert(
        env,
        env.event_id,
        "deferral_without_reference",
        adj.payer_id,
        adj.trace_number,
        deferred,
        adj.payment_date,
        f"{deferred} of recovery deferred on {adj.payment_date} ({cause}) without a reference: the payer will "
        "recover it later against an overpayment it does not name; identify it",
        m.reference_layout(env.tenant_id, adj.payer_id),
    )


async def undo_netting(
    m: Matching, env: Envelope[ProviderAdjustmentReceived], candidates: Sequence[tuple[str, str]]
) -> list[Outgoing]:
    """A negative WO in the remittance whose claims netted an overpayment: the payer gave that money back and
    will recover it later, so the netting no longer counts as recovered."""
    ids, _ = await m.repo.resolve(env.tenant_id, env.account_key, candidates)
    outputs = []
    for rid in sorted(ids):
        row = await m.repo.lock_receivable(env.tenant_id, rid)
        if row is None:
            continue
        amount = await m.repo.cancel_netting(env.tenant_id, rid, env.payload.remittance_id)
        if amount > 0:
            after, _ = await resplit(m, env.tenant_id, row)
            cause = f"recovery deferred by the payer (TRN {env.payload.trace_number} PLB #{env.payload.segment_ordinal})"
            outputs.append(
                await announce(
                    m, env, row, after, "ReceivableIncreased", amount, env.payload.payment_date, cause
                )
            )
    return outputs
