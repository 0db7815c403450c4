"""Refunds: a ``72`` paired with a ``WO`` in one remittance means the provider's check paid the overpayment, so the
WO is a refund acknowledgement, not cash withheld — whether the WO's own money or a refund staff recorded first.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope
from contracts.events import (
    Allocation,
    ProviderAdjustmentReceived,
)
from contracts.money import ZERO
from services.matching import domain, store
from services.matching.ledger import Explanation, announce, offset_event, parked_pair, resplit
from shared.ids import stable_id
from shared.messages import Outgoing


async def refund_acknowledged(
    conn: asyncpg.Connection,
    env: Envelope[ProviderAdjustmentReceived],
    reference: str,
    candidates: Sequence[tuple[str, str]],
) -> list[Outgoing]:
    """A 72 after its WO in the same remittance: the WO's money becomes a refund, or, when the WO was parked
    because staff had already recorded the refund, the WO is that refund acknowledged."""
    outputs: list[Outgoing] = []
    for wo in await store.sibling_pairs(conn, env.tenant_id, env.payload.remittance_id, reference, "WO"):
        if wo["bucket"] == "allocated":
            outputs += await convert_to_refund(conn, env, wo)
        if wo["amount"] > 0 and wo["unmatched_amount"] > 0:
            acknowledged = await acknowledge_parked_wo(conn, env, wo, candidates)
            outputs += acknowledged or await await_receivable(conn, env, wo, reference)
    return outputs


def unknown_receivable_refund(reference: str | None) -> str:
    """Why a refund pair's WO is not in the work queue although no receivable is known for it."""
    return (
        f"refund acknowledged for an unknown receivable: the 72 and this WO on {reference} net to zero (the "
        "provider's check, not money withheld); no receivable is known for it yet, and the refund is applied "
        "when it appears"
    )


async def await_receivable(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived], wo: asyncpg.Record, reference: str
) -> list[Outgoing]:
    """The 72 came after a WO that no receivable explained: if the two net to zero they are the provider's
    refund acknowledged, so the WO leaves the work queue and waits for its receivable as a refund."""
    returns = [
        r["amount"]
        for r in await store.sibling_pairs(conn, env.tenant_id, wo["remittance_id"], reference, "72")
    ]
    if not domain.refund_pair_nets(wo["amount"], [*returns, env.payload.amount]):
        return []
    reason = unknown_receivable_refund(reference)
    await store.await_refund(conn, env.tenant_id, wo["adjustment_id"], wo["unmatched_amount"], reason)
    return [
        offset_event(
            env,
            parked_pair(wo),
            stable_id(wo["adjustment_id"], "rematch", env.event_id),
            "refund_acknowledged",
            reason,
            (),
            ZERO,
            rematch_of=wo["adjustment_id"],
        )
    ]


async def acknowledge_refund(
    conn: asyncpg.Connection, env: Envelope[Any], adjustment_id: UUID, out: Explanation
) -> list[Outgoing]:
    """The WO being explained has a 72 on the same reference in the same remittance: a refund, not cash."""
    out.bucket = "refund_acknowledged"
    out.reason = f"refund acknowledged (72 on the same reference): {out.reason}"
    rows = await store.reclassify_as_refund(conn, env.tenant_id, adjustment_id, out.reason)
    return await _refund_totals(conn, env, rows)


RECORDED_REFUND = (
    "refund check already recorded by staff, acknowledged by the payer (72 on the same reference)"
)


async def acknowledge_recorded_refund(
    conn: asyncpg.Connection,
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
    ids, _ = await store.resolve(conn, tenant, env.account_key, candidates)
    left, allocations = amount, []
    for rid in sorted(ids):
        row = await store.lock_receivable(conn, tenant, rid)
        if row is None or left <= 0:
            continue
        moved: list[UUID] = []
        for recorded in await store.recorded_refunds(conn, tenant, rid):
            take = min(left, recorded["to_interest"] + recorded["to_principal"])
            if take <= 0:
                break
            allocation_id = stable_id(wo_id, "acknowledged refund", recorded["allocation_id"])
            await store.hand_over_refund(conn, tenant, recorded, allocation_id, wo_id, take)
            moved.append(allocation_id)
            left -= take
        if not moved:
            continue
        after, splits = await resplit(conn, tenant, row)
        to_interest = sum((splits[str(a)][0] for a in moved), ZERO)
        to_principal = sum((splits[str(a)][1] for a in moved), ZERO)
        allocations.append(
            Allocation(
                receivable_id=rid,
                reference=row["reference"],
                to_interest=to_interest,
                to_principal=to_principal,
            )
        )
        adj = env.payload
        await store.add_history(
            conn,
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
    conn: asyncpg.Connection,
    env: Envelope[ProviderAdjustmentReceived],
    wo: asyncpg.Record,
    candidates: Sequence[tuple[str, str]],
) -> list[Outgoing]:
    """The 72 came after its WO, which found its receivable already refunded and was parked: it is the
    acknowledgement of the refund staff recorded. Re-explain the WO (a re-match offset, so staff who were
    asked to review it hear it is resolved)."""
    acknowledged, allocations = await acknowledge_recorded_refund(
        conn, env, wo["adjustment_id"], candidates, wo["unmatched_amount"]
    )
    if not allocations:
        return []
    left = wo["unmatched_amount"] - acknowledged
    await store.reduce_unmatched(
        conn, env.tenant_id, wo["adjustment_id"], left, RECORDED_REFUND, "refund_acknowledged"
    )
    return [
        offset_event(
            env,
            parked_pair(wo),
            stable_id(wo["adjustment_id"], "rematch", env.event_id),
            "refund_acknowledged",
            RECORDED_REFUND,
            tuple(allocations),
            left,
            rematch_of=wo["adjustment_id"],
        )
    ]


async def convert_to_refund(
    conn: asyncpg.Connection, env: Envelope[Any], wo: asyncpg.Record
) -> list[Outgoing]:
    """A 72 arrived after its WO: the WO's allocations become refunds."""
    reason = f"refund acknowledged by 72 at PLB #{env.payload.segment_ordinal} pair {env.payload.pair_index}"
    rows = await store.reclassify_as_refund(conn, env.tenant_id, wo["adjustment_id"], reason)
    return await _refund_totals(conn, env, rows)


async def _refund_totals(
    conn: asyncpg.Connection, env: Envelope[Any], rows: list[asyncpg.Record]
) -> list[Outgoing]:
    outputs = []
    for changed in rows:
        row = await store.lock_receivable(conn, env.tenant_id, changed["receivable_id"])
        assert row is not None
        after, _ = await resplit(conn, env.tenant_id, row)
        outputs.append(
            await announce(
                conn,
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
