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
from services.matching.ledger import Matching, announce, apply_money, offset_event, resplit
from services.matching.records import Displaced, Receivable
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
    """Money dated ``after`` arrived late, but recoveries dated later, seen first, already took the balance:
    by business date the earlier money comes first, so up to ``amount`` of those later recoveries (latest
    first, whatever their kind) gives way, re-explained so staff hear of it, and the ledger ends as it would
    have in order. A recoupment's share goes back to the work queue as excess; a refund the payer
    acknowledged (72 + WO) is never queued, its share waits as an acknowledged refund (re-applied should the
    receivable owe more later)."""
    reason = f"exceeds the open balance of {row.reference} once {why} is counted"
    touched = await m.repo.displace_offsets_after(env.tenant_id, row.receivable_id, after, amount, reason)
    outputs = [given_back(env, moved, reason) for moved in touched]
    if touched:
        await resplit(m, env.tenant_id, row)
    return outputs


def given_back(env: Envelope[Any], moved: Displaced, reason: str) -> Outgoing:
    """The re-explanation of a recovery whose money was taken back from a receivable: back in the work queue
    (a recoupment), or waiting as an acknowledged refund (72 + WO, never queued)."""
    return offset_event(
        env,
        moved.pair.as_adjustment(),
        stable_id(moved.pair.adjustment_id, "displaced", env.event_id),
        "refund_acknowledged" if moved.refund else "unmatched",
        f"refund acknowledged (72 on the same reference); {moved.displaced} {reason}"
        if moved.refund
        else reason,
        (),
        ZERO if moved.refund else moved.displaced,
        rematch_of=moved.pair.adjustment_id,
    )


async def withdraw_guesses(
    m: Matching, env: Envelope[Any], rid: UUID, reference: str, keys: list[str]
) -> tuple[list[Outgoing], list[UUID]]:
    """Receivable ``rid`` is now known by ``keys``: recoveries whose reference names one of them, applied
    earlier by the scored search to another receivable because ``rid`` was not known yet (a WO citing an
    FCN whose letter had not arrived, taken for a receivable whose FCN looks alike), were a guess the evidence
    now overrules. Their money leaves the receivable it was guessed for, which owes that much again, and
    waits as unmatched for :func:`rematch_parked` to apply it to ``rid``: the ledger ends as if the letter
    had come first. Returns the events and the receivables the guesses left (their own parked recoveries
    may fit again: the caller re-matches them after ``rid``'s)."""
    reason = f"its reference names {reference}, known now: taken back from the receivable it was guessed for"
    touched = await m.repo.withdraw_guesses(env.tenant_id, env.account_key, rid, keys, reason)
    outputs = [given_back(env, moved, reason) for moved in touched]
    left: list[UUID] = []
    for moved in touched:
        other = moved.receivable_id
        assert other is not None
        row = await locked(m, env.tenant_id, other)
        after, _ = await resplit(m, env.tenant_id, row)
        cause = (
            f"TRN {moved.pair.trace_number} PLB #{moved.pair.segment_ordinal} pair {moved.pair.pair_index} "
            f"names {reference}: applied here by a guess, taken back"
        )
        outputs.append(
            await announce(
                m,
                env,
                row,
                after,
                "ReceivableIncreased",
                moved.displaced,
                moved.pair.payment_date,
                cause,
                money_key=moved.pair.adjustment_id,
            )
        )
        if other not in left:
            left.append(other)
    return outputs, left


async def rematch_parked(
    m: Matching, env: Envelope[Any], rid: UUID, keys: list[str], reason: str
) -> list[Outgoing]:
    """Apply recoveries parked as unmatched that name this receivable, oldest first, while it is open.

    They were parked because the receivable did not exist yet, or because it owed less than they brought
    when they came (interest due before their payment date had not been charged yet).

    A receivable can hold recoveries dated after a parked one already (a letter linking the identifier the
    parked one cites to a receivable recovered under another): the parked money comes first by business
    date, so those later recoveries give way (:func:`make_room`), as they would have in date order."""
    outputs: list[Outgoing] = []
    for listed in await m.repo.parked_recoveries(env.tenant_id, env.account_key, keys):
        parked = await m.repo.lock_pair(env.tenant_id, listed.adjustment_id)  # re-read: room made moves money
        if parked is None or (parked.unmatched_amount <= 0 and parked.awaiting_refund <= 0):
            continue
        row = await locked(m, env.tenant_id, rid)
        refund = parked.unmatched_amount <= 0  # a 72 + WO refund acknowledged before its receivable
        amount = parked.awaiting_refund if refund else parked.unmatched_amount
        adj = parked.as_adjustment()
        cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (re-matched)"
        row, moved = await make_room(m, env, row, amount, adj.payment_date, f"{cause} of {adj.payment_date}")
        outputs += moved
        if row.balance.open <= 0:
            continue
        note = f"refund acknowledged by the payer (72 on the same reference), applied to {row.reference}"
        rematch_id = stable_id(parked.adjustment_id, "rematch", env.event_id)
        applied, allocation, events = await apply_money(
            m,
            env,
            parked.adjustment_id,
            row,
            amount,
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
