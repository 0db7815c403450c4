"""The matching stage: explain every PLB pair and keep each receivable's balance (interest first)."""

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import (
    Allocation,
    InterestAccrued,
    OffsetRecorded,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    ReceivableChanged,
)
from contracts.money import ZERO
from services.matching import domain, metrics, store
from shared import envelopes
from shared.ids import receivable_id, stable_id
from shared.references import receivable_reference
from shared.stream import Incoming, Outgoing, Stage

stage = Stage("matching")
app = stage.app
OFFSETS = "remit.offsets.v1"
RECEIVABLES = "remit.receivables.v1"

EVENT_TYPES = {
    "allocated": "OffsetApplied",
    "unmatched": "OffsetUnmatched",
    "deferral": "RecoveryDeferred",
    "refund_acknowledged": "RefundAcknowledged",
    "non_offset": "NonOffsetRecorded",
}


def _receivable_event(
    source: Envelope[Any],
    row: asyncpg.Record,
    balance: domain.Balance,
    change: str,
    amount: Decimal,
    effective: date,
    cause: str,
) -> Outgoing:
    status = domain.status_of(balance)
    if change == "ReceivableReduced" and status == "settled":
        change = "ReceivableSettled"
    payload = ReceivableChanged(
        receivable_id=row["receivable_id"],
        payer_id=row["payer_id"],
        reference=row["reference"],
        status=status,
        policy=row["policy"],
        determination_date=row["determination_date"],
        effective_date=effective,
        change_amount=amount,
        principal=balance.principal,
        principal_recovered=balance.principal_recovered,
        interest_accrued=balance.interest_accrued,
        interest_recovered=balance.interest_recovered,
        balance=max(balance.open, ZERO),
        source=cause,
    )
    metrics.RECEIVABLE_CHANGES.labels(change).inc()
    return Outgoing.event(
        RECEIVABLES,
        envelopes.build(
            payload,
            event_id=stable_id(source.event_id, change, row["receivable_id"]),
            event_type=change,
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=str(source.event_id),
        ),
    )


async def _allocate(
    conn: asyncpg.Connection,
    source: Envelope[Any],
    adjustment_id: UUID,
    row: asyncpg.Record,
    amount: Decimal,
    effective: date,
    cause: str,
) -> tuple[domain.Application, Allocation, Outgoing]:
    """Apply ``amount`` of one PLB pair to one receivable; write the allocation and the new balance."""
    balance = store.balance_of(row)
    applied = domain.apply_recovery(amount, balance)
    after = domain.Balance(
        balance.principal,
        balance.principal_recovered + applied.to_principal,
        balance.interest_accrued,
        balance.interest_recovered + applied.to_interest,
    )
    rid = row["receivable_id"]
    await store.save_allocation(
        conn,
        source.tenant_id,
        stable_id(adjustment_id, "allocation", rid, source.event_id),
        adjustment_id,
        rid,
        applied.to_interest,
        applied.to_principal,
        effective,
    )
    await store.save_balance(conn, source.tenant_id, rid, after, domain.status_of(after))
    metrics.RECOVERED_DOLLARS.labels("interest").inc(float(applied.to_interest))
    metrics.RECOVERED_DOLLARS.labels("principal").inc(float(applied.to_principal))
    allocation = Allocation(
        receivable_id=rid,
        reference=row["reference"],
        to_interest=applied.to_interest,
        to_principal=applied.to_principal,
    )
    event = _receivable_event(source, row, after, "ReceivableReduced", applied.applied, effective, cause)
    return applied, allocation, event


def _offset_event(
    source: Envelope[Any],
    adj: ProviderAdjustmentReceived,
    offset_id: UUID,
    bucket: str,
    reason: str,
    allocations: tuple[Allocation, ...],
    unmatched: Decimal,
    event_type: str | None = None,
) -> Outgoing:
    payload = OffsetRecorded(
        offset_id=offset_id,
        remittance_id=adj.remittance_id,
        payer_id=adj.payer_id,
        trace_number=adj.trace_number,
        payment_date=adj.payment_date,
        segment_ordinal=adj.segment_ordinal,
        pair_index=adj.pair_index,
        reason_code=adj.reason_code,
        reference=adj.reference,
        amount=adj.amount,
        bucket=bucket,
        allocations=allocations,
        unmatched_amount=unmatched,
        reason=reason,
    )
    metrics.OFFSETS.labels(bucket).inc()
    metrics.OFFSET_DOLLARS.labels(bucket).inc(float(abs(adj.amount)))
    return Outgoing.event(
        OFFSETS,
        envelopes.build(
            payload,
            event_id=offset_id,
            event_type=event_type or EVENT_TYPES.get(bucket, "ForwardingBalanceOpened"),
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=str(source.event_id),
        ),
    )


async def on_adjustment(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived]
) -> list[Outgoing]:
    """Explain one PLB pair: allocate a recovery, park it unmatched, or classify it."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    reference = receivable_reference(adj.reference)
    meaning = domain.classify(adj.reason_code, adj.amount, reference)
    adjustment_id = env.event_id
    cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index}"
    outputs: list[Outgoing] = []
    allocations: tuple[Allocation, ...] = ()
    unmatched = ZERO
    bucket, reason, event_type = "non_offset", meaning.reason, None
    if meaning.action == "recover" and reference is not None:
        row = await store.lock_receivable(conn, tenant, receivable_id(tenant, adj.payer_id, reference))
        remainder = adj.amount
        if row is not None and store.balance_of(row).open > 0:
            applied, allocation, event = await _allocate(
                conn, env, adjustment_id, row, adj.amount, adj.payment_date, cause
            )
            allocations, remainder = (allocation,), applied.remainder
            outputs.append(event)
        unmatched = remainder
        if allocations:
            bucket = "allocated"
            reason = (
                meaning.reason
                if remainder == 0
                else f"{meaning.reason}; {remainder} exceeds the open balance"
            )
        else:
            bucket = "unmatched"
            reason = (
                "no open receivable with this reference yet" if row is None else "receivable already settled"
            )
    elif meaning.action == "review":
        bucket, unmatched = "unmatched", adj.amount
    elif meaning.action in ("forwarding_open", "forwarding_apply"):
        fb_reference = (adj.reference or adj.trace_number).strip()
        opening = meaning.action == "forwarding_open"
        await store.forwarding(
            conn,
            tenant,
            account,
            fb_reference,
            -adj.amount if opening else ZERO,
            ZERO if opening else adj.amount,
            adj.payment_date if opening else None,
        )
        bucket = "forwarding_balance"
        event_type = "ForwardingBalanceOpened" if opening else "ForwardingBalanceApplied"
    elif meaning.action == "deferral":
        bucket = "deferral"
    elif meaning.action == "refund":
        bucket = "refund_acknowledged"
    await store.save_adjustment(
        conn, tenant, account, adjustment_id, adj, reference, bucket, unmatched, reason
    )
    outputs.insert(
        0, _offset_event(env, adj, adjustment_id, bucket, reason, allocations, unmatched, event_type)
    )
    return outputs


async def on_overpayment(conn: asyncpg.Connection, env: Envelope[OverpaymentDetected]) -> list[Outgoing]:
    """Open or grow the receivable, then re-match recoveries that arrived before it."""
    op, tenant, account = env.payload, env.tenant_id, env.account_key
    change, row = await store.open_or_grow(conn, tenant, account, op)
    outputs: list[Outgoing] = []
    if change is not None:
        outputs.append(
            _receivable_event(
                env, row, store.balance_of(row), change, op.evidence_amount, op.determination_date, op.source
            )
        )
    for parked in await store.parked_recoveries(conn, tenant, account, op.reference):
        row = await store.lock_receivable(conn, tenant, op.receivable_id)
        assert row is not None
        if store.balance_of(row).open <= 0:
            break
        adj = ProviderAdjustmentReceived(
            remittance_id=parked["remittance_id"],
            payer_id=parked["payer_id"],
            trace_number=parked["trace_number"],
            payment_date=parked["payment_date"],
            segment_ordinal=parked["segment_ordinal"],
            pair_index=parked["pair_index"],
            provider_identifier="",
            fiscal_period_date=parked["payment_date"],
            reason_code=parked["reason_code"],
            reference=parked["reference"],
            amount=parked["amount"],
        )
        cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (re-matched)"
        applied, allocation, event = await _allocate(
            conn, env, parked["adjustment_id"], row, parked["unmatched_amount"], adj.payment_date, cause
        )
        left = applied.remainder
        reason = f"re-matched to {op.reference} after the receivable appeared"
        await store.reduce_unmatched(conn, tenant, parked["adjustment_id"], left, reason)
        outputs.append(event)
        outputs.append(
            _offset_event(
                env,
                adj,
                stable_id(parked["adjustment_id"], "rematch", env.event_id),
                "allocated",
                reason,
                (allocation,),
                left,
            )
        )
    return outputs


async def on_interest(conn: asyncpg.Connection, env: Envelope[InterestAccrued]) -> list[Outgoing]:
    """Add an accrued period's interest to the receivable's balance (recovered before principal)."""
    accrual, tenant = env.payload, env.tenant_id
    row = await store.lock_receivable(conn, tenant, accrual.receivable_id)
    if row is None or not await store.add_interest(
        conn, tenant, env.event_id, accrual.receivable_id, accrual.amount
    ):
        return []
    before = store.balance_of(row)
    after = domain.Balance(
        before.principal,
        before.principal_recovered,
        before.interest_accrued + accrual.amount,
        before.interest_recovered,
    )
    await store.save_balance(conn, tenant, accrual.receivable_id, after, domain.status_of(after))
    effective = accrual.period_end + timedelta(days=1)
    cause = f"interest period {accrual.period_number} ({accrual.period_start}..{accrual.period_end})"
    return [_receivable_event(env, row, after, "InterestAdded", accrual.amount, effective, cause)]


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Dispatch by topic."""
    if incoming.topic == "remit.provider-adjustments.v1":
        return await on_adjustment(conn, parse_envelope(incoming.value, ProviderAdjustmentReceived))
    if incoming.topic == "remit.overpayments.v1":
        return await on_overpayment(conn, parse_envelope(incoming.value, OverpaymentDetected))
    return await on_interest(conn, parse_envelope(incoming.value, InterestAccrued))


async def refresh_gauges() -> None:
    """Ledger-wide gauges (open receivables, open balance, unmatched queue), read from the ledger itself."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        count, balance, unmatched = await store.open_totals(conn)
    metrics.OPEN_RECEIVABLES.set(count)
    metrics.OPEN_BALANCE.set(float(balance))
    metrics.UNMATCHED_DOLLARS.set(float(unmatched))


app.timer(interval=10.0)(refresh_gauges)
stage.consume(["remit.provider-adjustments.v1", "remit.overpayments.v1", "remit.interest.v1"], handle)
