"""Money that gives way or waits, by business date: a recovery dated earlier than recoupments that already took
a receivable's balance displaces them (they go back to the work queue, re-explained), and recoveries parked as
unmatched are re-matched when their receivable appears or owes more (interest charged later).
"""

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope
from contracts.money import ZERO
from services.matching.ledger import Matching, apply_money, offset_event, resplit
from services.matching.records import Receivable
from shared.ids import stable_id
from shared.messages import Outgoing


async def locked(m: Matching, tenant: str, rid: UUID) -> Receivable:
    """A receivable this step knows exists (it opened it or read it under lock before), re-read."""
    row = await m.repo.lock_receivable(tenant, rid)
    assert row is not None, f"receivable {rid} vanished inside its own transaction"
    return row


async def make_room(
    m: Matching, env: Envelope[Any], row: Receivable, amount: Decimal, day: date, why: str
) -> tuple[Receivable, list[Outgoing]]:
    """Money dated ``day`` that one receivable owes less than: if later-dated recoupments took the balance
    first (their files arrived earlier), this money comes first by business date and they give way. Returns
    the receivable as it stands then, and the re-explained recoupments."""
    shortfall = amount - row.balance.open
    if shortfall <= 0:
        return row, []
    moved = await displace_later_offsets(m, env, row, day, shortfall, why)
    return await locked(m, env.tenant_id, row.receivable_id), moved


async def displace_later_offsets(
    m: Matching, env: Envelope[Any], row: Receivable, after: date, amount: Decimal, why: str
) -> list[Outgoing]:
    """Money dated ``after`` arrived late, but recoupments dated later, seen first, already took the balance:
    by business date the earlier money comes first, so up to ``amount`` of those later recoupments (latest
    first) goes back to the work queue as excess, re-explained so staff hear of it, and the ledger ends as it
    would have in order."""
    reason = f"exceeds the open balance of {row.reference} once {why} is counted"
    touched = await m.repo.displace_offsets_after(env.tenant_id, row.receivable_id, after, amount, reason)
    outputs = [
        offset_event(
            env,
            moved.pair.as_adjustment(),
            stable_id(moved.pair.adjustment_id, "displaced", env.event_id),
            "unmatched",
            reason,
            (),
            moved.displaced,
            rematch_of=moved.pair.adjustment_id,
        )
        for moved in touched
    ]
    if touched:
        await resplit(m, env.tenant_id, row)
    return outputs


async def rematch_parked(
    m: Matching, env: Envelope[Any], rid: UUID, keys: list[str], reason: str
) -> list[Outgoing]:
    """Apply recoveries parked as unmatched that name this receivable, oldest first, while it is open.

    They were parked because the receivable did not exist yet, or because it owed less than they brought
    when they came (interest due before their payment date had not been charged yet)."""
    outputs: list[Outgoing] = []
    for parked in await m.repo.parked_recoveries(env.tenant_id, env.account_key, keys):
        row = await locked(m, env.tenant_id, rid)
        if row.balance.open <= 0:
            break
        refund = parked.unmatched_amount <= 0  # a 72 + WO refund acknowledged before its receivable
        note = f"refund acknowledged by the payer (72 on the same reference), applied to {row.reference}"
        adj = parked.as_adjustment()
        cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (re-matched)"
        rematch_id = stable_id(parked.adjustment_id, "rematch", env.event_id)
        applied, allocation, events = await apply_money(
            m,
            env,
            parked.adjustment_id,
            row,
            parked.awaiting_refund if refund else parked.unmatched_amount,
            adj.payment_date,
            cause,
            kind="refund" if refund else "offset",
            rematch=rematch_id,
        )
        left = applied.remainder
        if refund:
            await m.repo.reduce_awaiting(env.tenant_id, parked.adjustment_id, left, note)
        else:
            await m.repo.reduce_unmatched(env.tenant_id, parked.adjustment_id, left, reason)
        outputs += events
        outputs.append(
            offset_event(
                env,
                adj,
                rematch_id,
                "refund_acknowledged" if refund else "allocated",
                note if refund else reason,
                (allocation,),
                ZERO if refund else left,
                rematch_of=parked.adjustment_id,
            )
        )
    return outputs
