"""Refunds: a ``72`` paired with a ``WO`` in one remittance means the provider's check paid the overpayment, so the
WO is a refund acknowledgement, not cash withheld — whether the WO's own money or a refund staff recorded first.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import (
    Allocation,
    ProviderAdjustmentReceived,
)
from contracts.money import ZERO
from services.matching import domain
from services.matching.decisions import RECORDED_REFUND, unknown_receivable_refund
from services.matching.ledger import Matching, announce, offset_event, resplit
from services.matching.records import StoredPair
from shared.ids import stable_id
from shared.messages import Outgoing


async def refund_acknowledged(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    reference: str,
    candidates: Sequence[tuple[str, str]],
) -> list[Outgoing]:
    """A 72 after its WO in the same remittance: the WO's money becomes a refund, or, when the WO was parked
    because staff had already recorded the refund, the WO is that refund acknowledged."""
    outputs: list[Outgoing] = []
    for wo in await m.repo.sibling_pairs(env.tenant_id, env.payload.remittance_id, reference, "WO"):
        if wo.bucket == "allocated":
            outputs += await convert_to_refund(m, env, wo)
        if wo.amount > 0 and wo.unmatched_amount > 0:
            acknowledged = await acknowledge_parked_wo(m, env, wo, candidates)
            outputs += acknowledged or await await_receivable(m, env, wo, reference)
    return outputs


async def await_receivable(
    m: Matching, env: Envelope[ProviderAdjustmentReceived], wo: StoredPair, reference: str
) -> list[Outgoing]:
    """The 72 came after a WO that no receivable explained: if the two net to zero they are the provider's
    refund acknowledged, so the WO leaves the work queue and waits for its receivable as a refund."""
    returns = [r.amount for r in await m.repo.sibling_pairs(env.tenant_id, wo.remittance_id, reference, "72")]
    if not domain.refund_pair_nets(wo.amount, [*returns, env.payload.amount]):
        return []
    reason = unknown_receivable_refund(reference)
    await m.repo.await_refund(env.tenant_id, wo.adjustment_id, wo.unmatched_amount, reason)
    return [
        offset_event(
            env,
            wo.as_adjustment(),
            stable_id(wo.adjustment_id, "rematch", env.event_id),
            "refund_acknowledged",
            reason,
            (),
            ZERO,
            rematch_of=wo.adjustment_id,
        )
    ]


async def acknowledge_refund(
    m: Matching, env: Envelope[Any], adjustment_id: UUID, reason: str
) -> list[Outgoing]:
    """The WO being explained has a 72 on the same reference in the same remittance: a refund, not cash. Its
    allocations become refunds (``reason``: the pair's new explanation, :func:`acknowledged`)."""
    rids = await m.repo.reclassify_as_refund(env.tenant_id, adjustment_id, reason)
    return await _refund_totals(m, env, rids)


async def acknowledge_recorded_refund(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    wo_id: UUID,
    candidates: Sequence[tuple[str, str]],
    amount: Decimal,
) -> tuple[Decimal, list[Allocation]]:
    """A positive WO paired with a 72 whose receivable was already refunded by a check staff recorded: the
    payer is acknowledging that refund, not withholding new money. The recorded refund is handed over to
    the WO (same money, same check date), so nothing is counted twice and the WO is not left unexplained.
    Returns the amount acknowledged and the allocations that now explain it."""
    tenant = env.tenant_id
    ids, _ = await m.repo.resolve(tenant, env.account_key, candidates)
    left, allocations = amount, []
    for rid in sorted(ids):
        row = await m.repo.lock_receivable(tenant, rid)
        if row is None or left <= 0:
            continue
        moved: list[UUID] = []
        for recorded in await m.repo.recorded_refunds(tenant, rid):
            take = min(left, recorded.to_interest + recorded.to_principal)
            if take <= 0:
                break
            allocation_id = stable_id(wo_id, "acknowledged refund", recorded.allocation_id)
            # Principal first: the split is re-derived by the re-split below, by business date.
            to_principal = min(take, recorded.to_principal)
            await m.repo.hand_over_refund(
                tenant, recorded, allocation_id, wo_id, take - to_principal, to_principal
            )
            moved.append(allocation_id)
            left -= take
        if not moved:
            continue
        after, splits = await resplit(m, tenant, row)
        to_interest = sum((splits[str(a)][0] for a in moved), ZERO)
        to_principal = sum((splits[str(a)][1] for a in moved), ZERO)
        allocations.append(
            Allocation(
                receivable_id=rid,
                reference=row.reference,
                to_interest=to_interest,
                to_principal=to_principal,
            )
        )
        adj = env.payload
        await m.repo.add_history(
            tenant,
            rid,
            stable_id(wo_id, "RefundAcknowledged", rid),
            "RefundAcknowledged",
            to_interest + to_principal,
            adj.payment_date,
            f"recorded refund acknowledged by the payer (TRN {adj.trace_number} PLB #{adj.segment_ordinal})",
            domain.status_of(after),
            max(after.open, ZERO),
        )
    return amount - left, allocations


async def acknowledge_parked_wo(
    m: Matching,
    env: Envelope[ProviderAdjustmentReceived],
    wo: StoredPair,
    candidates: Sequence[tuple[str, str]],
) -> list[Outgoing]:
    """The 72 came after its WO, which found its receivable already refunded and was parked: it is the
    acknowledgement of the refund staff recorded. Re-explain the WO (a re-match offset, so staff who were
    asked to review it hear it is resolved)."""
    acknowledged, allocations = await acknowledge_recorded_refund(
        m, env, wo.adjustment_id, candidates, wo.unmatched_amount
    )
    if not allocations:
        return []
    left = wo.unmatched_amount - acknowledged
    await m.repo.reduce_unmatched(
        env.tenant_id, wo.adjustment_id, left, RECORDED_REFUND, "refund_acknowledged"
    )
    return [
        offset_event(
            env,
            wo.as_adjustment(),
            stable_id(wo.adjustment_id, "rematch", env.event_id),
            "refund_acknowledged",
            RECORDED_REFUND,
            tuple(allocations),
            left,
            rematch_of=wo.adjustment_id,
        )
    ]


async def convert_to_refund(m: Matching, env: Envelope[Any], wo: StoredPair) -> list[Outgoing]:
    """A 72 arrived after its WO: the WO's allocations become refunds."""
    reason = f"refund acknowledged by 72 at PLB #{env.payload.segment_ordinal} pair {env.payload.pair_index}"
    rids = await m.repo.reclassify_as_refund(env.tenant_id, wo.adjustment_id, reason)
    return await _refund_totals(m, env, rids)


async def _refund_totals(m: Matching, env: Envelope[Any], rids: list[UUID]) -> list[Outgoing]:
    outputs = []
    for rid in rids:
        row = await m.repo.lock_receivable(env.tenant_id, rid)
        assert row is not None
        after, _ = await resplit(m, env.tenant_id, row)
        outputs.append(
            await announce(
                m,
                env,
                row,
                after,
                "ReceivableReduced",
                ZERO,
                env.payload.payment_date,
                "refund acknowledged by the payer (PLB 72)",
                "refund",
            )
        )
    return outputs
