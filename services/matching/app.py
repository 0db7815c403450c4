"""The matching stage: explain every PLB pair and keep each receivable's balance.

Per account (partition key) and in order: a positive ``WO`` reduces the receivable its reference names (FCN per
the payer's reference layout, then ICN, patient control number, trace number, then a scored search that never
auto-applies below the confidence threshold); money goes to interest first. A ``WO`` without a reference is a
lump recoupment spread oldest first. What matches nothing waits in the unmatched queue and is re-matched when
its receivable appears. ``FB`` opens/applies forwarding balances, ``72`` turns the paired ``WO`` into a refund
acknowledgement, everything else is classified and recorded, never applied.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import (
    AlertRaised,
    Allocation,
    DatedRecovery,
    InterestAccrued,
    OffsetRecorded,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    ReceivableChanged,
    StaffActionRecorded,
)
from contracts.money import ZERO
from services.matching import domain, metrics, store
from shared import envelopes, outbox, plugins
from shared.clock import today
from shared.ids import receivable_id, stable_id
from shared.policy_config import PolicyConfig, PolicyConfigError, PolicyResolver
from shared.stream import Incoming, Outgoing, Rejected, Stage

log = logging.getLogger(__name__)

stage = Stage("matching")
app = stage.app
POLICIES: dict[str, Any] = plugins.load_plugins(plugins.PAYER_POLICIES)
POLICY = PolicyResolver(POLICIES, stage.settings, PolicyConfig.from_settings(stage.settings))
OFFSETS = "remit.offsets.v1"
RECEIVABLES = "remit.receivables.v1"
ALERTS = "remit.alerts.v1"

EVENT_TYPES = {
    "allocated": "OffsetApplied",
    "unmatched": "OffsetUnmatched",
    "deferral": "RecoveryDeferred",
    "refund_acknowledged": "RefundAcknowledged",
    "non_offset": "NonOffsetRecorded",
}
CLOSING_CHANGES = {
    "settled": "ReceivableSettled",
    "refunded": "ReceivableRefunded",
    "written_off": "ReceivableWrittenOff",
}


def interest_first(row: asyncpg.Record) -> bool:
    """Recovery order of the receivable's payer policy as configured for its tenant (Medicare: accrued
    interest before principal); a policy that is not installed keeps DOMAIN.md's interest-first rule."""
    try:
        policy = POLICY.resolve(row["tenant_id"], row["payer_id"], row["policy"])
    except PolicyConfigError:
        return True
    return getattr(policy, "recovery_order", "interest_first") != "principal_first"


async def announce(
    conn: asyncpg.Connection,
    source: Envelope[Any],
    row: asyncpg.Record,
    after: domain.Balance,
    change: str,
    amount: Decimal,
    effective: date,
    cause: str,
    recovery_kind: str | None = None,
    *,
    money_key: UUID | None = None,
    causation: str | None = None,
) -> Outgoing:
    """Write the receivable's history line and its ReceivableChanged event (closing changes named as such).

    One source event can move one receivable several times (a letter that re-matches two parked recoveries):
    ``money_key`` (the parked PLB pair) keeps those changes' event ids apart, or downstream stages would take
    the second for a replay of the first and drop it. ``causation`` names the offset that moved the money
    when it is not the source event itself, so notification can join the change to its offset.
    """
    status = domain.status_of(after)
    if change == "ReceivableReduced" and status in CLOSING_CHANGES:
        change = CLOSING_CHANGES[status]
    rid = row["receivable_id"]
    event_id = (
        stable_id(source.event_id, change, rid)
        if money_key is None
        else stable_id(source.event_id, change, rid, money_key)
    )
    await store.add_history(
        conn, source.tenant_id, rid, event_id, change, amount, effective, cause, status, max(after.open, ZERO)
    )
    payload = ReceivableChanged(
        receivable_id=rid,
        payer_id=row["payer_id"],
        reference=row["reference"],
        status=status,
        policy=row["policy"],
        determination_date=row["determination_date"],
        effective_date=effective,
        change_amount=amount,
        principal=after.principal,
        principal_recovered=after.principal_recovered,
        interest_accrued=after.interest_accrued,
        interest_recovered=after.interest_recovered,
        refunded=after.refunded,
        written_off=after.written_off,
        paused=after.paused,
        balance=max(after.open, ZERO),
        source=cause,
        recovery_kind=recovery_kind,
        recovery_schedule=tuple(
            DatedRecovery(
                kind=r["kind"],
                effective_date=r["effective_date"],
                to_interest=r["to_interest"],
                to_principal=r["to_principal"],
            )
            for r in await store.recovery_schedule(conn, source.tenant_id, rid)
        ),
        original_payment_date=row["original_payment_date"],
        duplicate=row["duplicate"],
    )
    metrics.RECEIVABLE_CHANGES.labels(change).inc()
    return Outgoing.event(
        RECEIVABLES,
        envelopes.build(
            payload,
            event_id=event_id,
            event_type=change,
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=causation or str(source.event_id),
        ),
    )


def alert(
    source: Envelope[Any],
    subject: object,
    kind: str,
    payer: str,
    reference: str | None,
    amount: Decimal | None,
    observed: date,
    detail: str,
) -> Outgoing:
    """An AlertRaised event, once per (subject, kind)."""
    payload = AlertRaised(
        alert_id=stable_id(subject, kind),
        kind=kind,
        payer_id=payer,
        reference=reference,
        amount=amount,
        observed_on=observed,
        detail=detail,
    )
    return Outgoing.event(
        ALERTS,
        envelopes.build(
            payload,
            event_id=payload.alert_id,
            event_type="AlertRaised",
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=str(source.event_id),
        ),
    )


async def resplit(
    conn: asyncpg.Connection, tenant: str, row: asyncpg.Record
) -> tuple[domain.Balance, dict[str, tuple[Decimal, Decimal]]]:
    """Re-split every recovery of the receivable interest-first *in business-date order* and store the totals.

    Whether a dollar paid interest or principal depends on what interest was due on the day it was taken, not
    on when our services happened to see the charge: this keeps the ledger identical under replays, late
    files and interest ticks that run ahead of a backlog.
    """
    rid = row["receivable_id"]
    charges, recoveries = await store.dated_money(conn, tenant, rid)
    splits = domain.split_in_date_order(
        charges,
        recoveries,
        row["principal"] - row["written_off"],
        interest_first=interest_first(row),
    )
    await store.set_splits(conn, tenant, splits)
    totals = await store.recovered_totals(conn, tenant, rid)
    after = replace(
        store.balance_of(row),
        principal_recovered=totals["principal_recovered"],
        interest_recovered=totals["interest_recovered"],
        interest_accrued=totals["interest_accrued"],
        refunded=totals["refunded"],
    )
    await store.save_balance(conn, tenant, rid, after, domain.status_of(after))
    return after, splits


async def apply_money(
    conn: asyncpg.Connection,
    source: Envelope[Any],
    money_id: UUID,
    row: asyncpg.Record,
    amount: Decimal,
    effective: date,
    cause: str,
    *,
    kind: str = "offset",
    remittance_id: UUID | None = None,
    rematch: UUID | None = None,
) -> tuple[domain.Application, Allocation, list[Outgoing]]:
    """Apply an amount (offset or refund) to one receivable: allocation row, new balance, history, events.

    Money withheld while an appeal pauses recoupment is still applied (it was taken). Flagging it is the
    interest stage's job alone (``recoupment_during_pause``, one alert per recovery): it holds the pause
    intervals, so an appeal recorded late, back-dated before a recoupment already applied, is flagged too.
    ``rematch`` is the id of the re-match offset when a parked recovery is applied later (see :func:`announce`).
    """
    before = store.balance_of(row)
    provisional = domain.apply_recovery(amount, before, interest_first=interest_first(row))
    rid = row["receivable_id"]
    allocation_id = stable_id(money_id, "allocation", rid, source.event_id)
    await store.save_allocation(
        conn,
        source.tenant_id,
        allocation_id,
        money_id,
        rid,
        provisional.to_interest,
        provisional.to_principal,
        effective,
        kind,
        remittance_id,
    )
    after, splits = await resplit(conn, source.tenant_id, row)
    to_interest, to_principal = splits[str(allocation_id)]
    applied = domain.Application(to_interest, to_principal, provisional.remainder)
    metrics.RECOVERED_DOLLARS.labels(row["policy"], "interest").inc(float(applied.to_interest))
    metrics.RECOVERED_DOLLARS.labels(row["policy"], "principal").inc(float(applied.to_principal))
    outputs = [
        await announce(
            conn,
            source,
            row,
            after,
            "ReceivableReduced",
            applied.applied,
            effective,
            cause,
            "offset" if kind == "netting" else kind,
            money_key=money_id if rematch is not None else None,
            causation=str(rematch) if rematch is not None else None,
        )
    ]
    allocation = Allocation(
        receivable_id=rid,
        reference=row["reference"],
        to_interest=applied.to_interest,
        to_principal=applied.to_principal,
    )
    return applied, allocation, outputs


def offset_event(
    source: Envelope[Any],
    adj: ProviderAdjustmentReceived,
    offset_id: UUID,
    bucket: str,
    reason: str,
    allocations: tuple[Allocation, ...],
    unmatched: Decimal,
    event_type: str | None = None,
    rematch_of: UUID | None = None,
) -> Outgoing:
    """The OffsetRecorded event of one PLB pair (or of a later re-match of it, naming the original offset)."""
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
        rematch_of=rematch_of,
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


class Explanation:
    """The outcome of explaining one PLB pair, built up by the handler."""

    def __init__(self, reason: str) -> None:
        self.bucket = "non_offset"
        self.reason = reason
        self.unmatched = ZERO
        self.allocations: list[Allocation] = []
        self.outputs: list[Outgoing] = []
        self.method: str | None = None
        self.suggestion: str | None = None
        self.event_type: str | None = None


async def recover(
    conn: asyncpg.Connection,
    env: Envelope[ProviderAdjustmentReceived],
    candidates: Sequence[tuple[str, str]],
    match_reference: str | None,
    out: Explanation,
    cause: str,
) -> None:
    """A positive WO: resolve its receivable(s) and apply, or park it unmatched with the reason."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    threshold = stage.settings.match_confidence_threshold
    rows: list[asyncpg.Record] = []
    if candidates:
        ids, method = await store.resolve(conn, tenant, account, candidates)
        locked = [await store.lock_receivable(conn, tenant, rid) for rid in sorted(ids)]
        rows = [r for r in locked if r is not None]
        out.method = method
        if len(rows) > 1:
            rows = sorted(rows, key=lambda r: (r["determination_date"], r["reference"]))
    if not rows:
        pool = await store.open_candidates(conn, tenant, account)
        chosen, confidence, best = (
            domain.best_candidate(pool, adj.amount, match_reference, adj.payment_date, threshold)
            if match_reference
            else (None, 0.0, None)
        )
        if match_reference is None:
            chosen_ids = [UUID(c.receivable_id) for c in pool]  # lump recoupment: oldest first
            out.method = "oldest_first"
        else:
            chosen_ids = [UUID(chosen.receivable_id)] if chosen else []
            out.method = f"scored:{confidence:.2f}" if chosen else None
            if best is not None and chosen is None:
                out.suggestion = f"receivable {best.receivable_id} (score {confidence:.2f} < {threshold:.2f})"
        locked = [await store.lock_receivable(conn, tenant, rid) for rid in chosen_ids]
        rows = [r for r in locked if r is not None]
    left = adj.amount
    for row in rows:
        if left <= 0:
            break
        if store.balance_of(row).open <= 0:
            continue
        applied, allocation, events = await apply_money(
            conn, env, env.event_id, row, left, adj.payment_date, cause
        )
        if applied.applied > 0:
            out.allocations.append(allocation)
            out.outputs += events
        left = applied.remainder
    out.unmatched = left
    if out.allocations:
        out.bucket = "allocated"
        refs = ", ".join(a.reference for a in out.allocations)
        out.reason = f"recovered against {refs} ({out.method})" + (
            f"; {left} exceeds the open balance" if left > 0 else ""
        )
    else:
        out.bucket = "unmatched"
        out.reason = (
            "no open receivable with this reference yet"
            if not rows
            else "every receivable it names is already settled"
        )


async def withheld(
    conn: asyncpg.Connection,
    env: Envelope[ProviderAdjustmentReceived],
    reference: str | None,
    candidates: Sequence[tuple[str, str]],
    out: Explanation,
    cause: str,
) -> None:
    """A positive WO: recover it; with a 72 on the same reference in the same remittance it acknowledges a
    refund instead — the provider's check, whether the WO's money or a refund staff already recorded."""
    adj = env.payload
    refunds = (
        await store.sibling_pairs(conn, env.tenant_id, adj.remittance_id, reference, "72")
        if reference
        else []
    )
    await recover(conn, env, candidates, reference, out, cause)
    if refunds and out.allocations:
        out.outputs += await acknowledge_refund(conn, env, env.event_id, out)
    if refunds and out.unmatched > 0:
        acknowledged, allocations = await acknowledge_recorded_refund(
            conn, env, env.event_id, candidates, out.unmatched
        )
        if allocations:
            out.unmatched -= acknowledged
            out.allocations += allocations
            out.bucket = "refund_acknowledged"
            out.reason = f"{RECORDED_REFUND}: {out.reason}"


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
            outputs += await acknowledge_parked_wo(conn, env, wo, candidates)
    return outputs


async def on_adjustment(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived]
) -> list[Outgoing]:
    """Explain one PLB pair; every cent ends in exactly one bucket."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    try:
        parsed = domain.read_reference(POLICY, tenant, adj.payer_id, adj.reference)
    except PolicyConfigError as exc:
        raise Rejected("unknown_policy", str(exc)) from exc
    candidates = parsed.candidates(adj.reference)
    meaning = domain.classify(adj.reason_code, adj.amount, parsed.receivable)
    cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index}"
    out = Explanation(meaning.reason)
    match_reference = parsed.receivable
    if adj.reason_code == "WO" and adj.amount > 0:
        await withheld(conn, env, parsed.receivable, candidates, out, cause)
    elif meaning.action == "review":
        out.bucket, out.unmatched = "unmatched", adj.amount
    elif meaning.action in ("forwarding_open", "forwarding_apply"):
        opening = meaning.action == "forwarding_open"
        match_reference = await (open_forwarding if opening else apply_forwarding)(conn, env, out)
        out.bucket = "forwarding_balance"
        out.event_type = "ForwardingBalanceOpened" if opening else "ForwardingBalanceApplied"
    elif meaning.action == "deferral":
        out.bucket = "deferral"
        if parsed.receivable is None:
            out.outputs.append(unidentified_deferral(env, cause))
        else:
            out.outputs += await undo_netting(conn, env, candidates)
    elif meaning.action == "refund":
        out.bucket = "refund_acknowledged"
        if parsed.receivable:
            out.outputs += await refund_acknowledged(conn, env, parsed.receivable, candidates)
    await store.save_adjustment(
        conn,
        tenant,
        account,
        env.event_id,
        adj,
        match_reference=match_reference,
        match_keys=[k for _, k in candidates],
        bucket=out.bucket,
        unmatched=out.unmatched,
        reason=out.reason,
        method=out.method,
        suggestion=out.suggestion,
    )
    event = offset_event(
        env, adj, env.event_id, out.bucket, out.reason, tuple(out.allocations), out.unmatched, out.event_type
    )
    return [event, *out.outputs]


async def open_forwarding(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived], out: Explanation
) -> str:
    """A negative FB carries a balance forward under its reference, else its own TRN02 (DOMAIN.md: the
    positive FB names the TRN02 that created it). Positive FBs that arrived first and were applied to
    another balance (or parked on none) are moved to it. Returns the balance's key."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    key = (adj.reference or adj.trace_number).strip()
    await store.forwarding(conn, tenant, account, key, -adj.amount, ZERO, adj.payment_date)
    room = -adj.amount - await store.forwarding_applied(conn, tenant, account, key)
    for early in await store.misplaced_applications(conn, tenant, account, key, adj.payment_date):
        if not early["named"] and early["amount"] > room:
            continue
        room -= early["amount"]
        await store.move_forwarding_application(
            conn,
            tenant,
            account,
            early["adjustment_id"],
            early["amount"],
            early["match_reference"],
            key,
            f"earlier forwarding balance {key} applied (it arrived after this payment)",
        )
    return key


async def apply_forwarding(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived], out: Explanation
) -> str:
    """A positive FB applies the balance its reference names; without a reference, or under a key the
    negative FB did not use (a payer payment number), the account's oldest open balance that can take the
    whole amount (same payer and payee: the account). When none can, it is kept under its own key, where a
    negative FB arriving later finds it (:func:`open_forwarding`). Returns the balance's key."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    named = (adj.reference or "").strip() or None
    rows = await store.forwarding_balances(conn, tenant, account)
    key = named if named in {r["reference"] for r in rows} else None
    if key is None:
        key = domain.forwarding_for(
            adj.amount,
            [
                domain.OpenForwarding(
                    r["reference"], r["opened_amount"] - r["applied_amount"], r["opened_on"]
                )
                for r in rows
                if r["opened_amount"] > r["applied_amount"]
            ],
        )
        if key is not None:
            out.reason = (
                f"earlier forwarding balance {key} applied (oldest open balance that takes it; the FB "
                f"{'names ' + named if named else 'has no reference'})"
            )
        else:
            key = named or adj.trace_number.strip()
            out.reason = "forwarding balance applied before any open balance could take it"
    await store.forwarding(conn, tenant, account, key, ZERO, adj.amount, None)
    return key


def unidentified_deferral(env: Envelope[ProviderAdjustmentReceived], cause: str) -> Outgoing:
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
    )


async def undo_netting(
    conn: asyncpg.Connection, env: Envelope[ProviderAdjustmentReceived], candidates: Sequence[tuple[str, str]]
) -> list[Outgoing]:
    """A negative WO in the remittance whose claims netted an overpayment: the payer gave that money back and
    will recover it later, so the netting no longer counts as recovered."""
    ids, _ = await store.resolve(conn, env.tenant_id, env.account_key, candidates)
    outputs = []
    for rid in sorted(ids):
        row = await store.lock_receivable(conn, env.tenant_id, rid)
        if row is None:
            continue
        amount = await store.cancel_netting(conn, env.tenant_id, rid, env.payload.remittance_id)
        if amount > 0:
            after, _ = await resplit(conn, env.tenant_id, row)
            cause = f"recovery deferred by the payer (TRN {env.payload.trace_number} PLB #{env.payload.segment_ordinal})"
            outputs.append(
                await announce(
                    conn, env, row, after, "ReceivableIncreased", amount, env.payload.payment_date, cause
                )
            )
    return outputs


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


def parked_pair(row: asyncpg.Record) -> ProviderAdjustmentReceived:
    """A stored PLB pair as the contract object its later re-explanation is announced with (the PLB's
    provider identifier and fiscal period are not kept: no consumer of a re-match reads them)."""
    return ProviderAdjustmentReceived(
        remittance_id=row["remittance_id"],
        payer_id=row["payer_id"],
        trace_number=row["trace_number"],
        payment_date=row["payment_date"],
        segment_ordinal=row["segment_ordinal"],
        pair_index=row["pair_index"],
        provider_identifier="",
        fiscal_period_date=row["payment_date"],
        reason_code=row["reason_code"],
        reference=row["reference"],
        amount=row["amount"],
    )


async def on_overpayment(conn: asyncpg.Connection, env: Envelope[OverpaymentDetected]) -> list[Outgoing]:
    """Open or grow the receivable, then re-match recoveries that arrived before it."""
    op, tenant, account = env.payload, env.tenant_id, env.account_key
    change, row = await store.open_or_grow(conn, tenant, account, op)
    outputs: list[Outgoing] = []
    if change is not None:
        outputs.append(
            await announce(
                conn,
                env,
                row,
                store.balance_of(row),
                change,
                op.evidence_amount,
                op.determination_date,
                op.source,
            )
        )
    keys = await store.receivable_keys(conn, tenant, op.receivable_id)
    netted = op.netted_in_remittance
    if netted is not None and not await store.deferral_in(conn, tenant, netted, keys):
        fresh = await store.lock_receivable(conn, tenant, op.receivable_id)
        assert fresh is not None
        if store.balance_of(fresh).open > 0:
            _, _, events = await apply_money(
                conn,
                env,
                stable_id(env.event_id, "netting"),
                fresh,
                op.evidence_amount,
                op.determination_date,
                f"netted in the claim amounts ({op.source})",
                kind="netting",
                remittance_id=netted,
            )
            outputs += events
    for parked in await store.parked_recoveries(conn, tenant, account, keys):
        row = await store.lock_receivable(conn, tenant, op.receivable_id)
        assert row is not None
        if store.balance_of(row).open <= 0:
            break
        adj = parked_pair(parked)
        cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (re-matched)"
        rematch_id = stable_id(parked["adjustment_id"], "rematch", env.event_id)
        applied, allocation, events = await apply_money(
            conn,
            env,
            parked["adjustment_id"],
            row,
            parked["unmatched_amount"],
            adj.payment_date,
            cause,
            rematch=rematch_id,
        )
        left = applied.remainder
        reason = f"re-matched to {op.reference} after the receivable appeared"
        await store.reduce_unmatched(conn, tenant, parked["adjustment_id"], left, reason)
        outputs += events
        outputs.append(
            offset_event(
                env,
                adj,
                rematch_id,
                "allocated",
                reason,
                (allocation,),
                left,
                rematch_of=parked["adjustment_id"],
            )
        )
    return outputs


async def on_interest(conn: asyncpg.Connection, env: Envelope[InterestAccrued]) -> list[Outgoing]:
    """Add an accrued period's interest, or a signed correction, then re-split recoveries by business date
    (a charge due before a recovery's date takes that recovery's money first)."""
    accrual, tenant = env.payload, env.tenant_id
    row = await store.lock_receivable(conn, tenant, accrual.receivable_id)
    due = accrual.period_end + timedelta(days=1)
    if row is None or not await store.add_interest(
        conn, tenant, env.event_id, accrual.receivable_id, accrual.amount, due
    ):
        return []
    after, _ = await resplit(conn, tenant, row)
    version = f" v{accrual.version}" if accrual.version > 1 else ""
    cause = f"interest period {accrual.period_number}{version} ({accrual.period_start}..{accrual.period_end})"
    return [await announce(conn, env, row, after, "InterestAdded", accrual.amount, due, cause)]


async def on_staff_action(conn: asyncpg.Connection, env: Envelope[StaffActionRecorded]) -> list[Outgoing]:
    """Appeals pause and resume recoupment; a won appeal or a write-off closes the rest; a refund check pays.

    A repayment schedule moves no money and changes no balance (its installments arrive as refund checks or
    recoupments): it is the interest stage's fact, ignored here.
    """
    action, tenant = env.payload, env.tenant_id
    if action.kind == "repayment_schedule_granted":
        return []
    rid = receivable_id(tenant, action.payer_id, action.reference.strip())
    row = await store.lock_receivable(conn, tenant, rid)
    if row is None:
        raise Rejected(
            "unknown_receivable",
            f"no receivable {action.reference.strip()} for payer {action.payer_id}",
            {"reference": action.reference.strip()},
        )
    before = store.balance_of(row)
    cause = f"staff {action.entered_by}: {action.kind.replace('_', ' ')}"
    if action.kind == "refund_sent":
        amount = action.amount if action.amount is not None else before.open
        _, _, outputs = await apply_money(
            conn, env, action.action_id, row, amount, action.effective_date, cause, kind="refund"
        )
        return outputs
    if action.kind == "appeal_filed":
        after, change = _with(before, paused=True), "ReceivablePaused"
    elif action.kind == "appeal_decided" and action.outcome == "upheld":
        after, change = _with(before, paused=False), "ReceivableResumed"
    else:
        write = (
            before.open
            if action.kind == "appeal_decided" or action.amount is None
            else min(action.amount, before.open)
        )
        after, change = (
            _with(before, paused=False, written_off=before.written_off + max(write, ZERO)),
            "ReceivableWrittenOff",
        )
    await store.save_balance(conn, tenant, rid, after, domain.status_of(after))
    amount = after.written_off - before.written_off
    return [await announce(conn, env, row, after, change, amount, action.effective_date, cause)]


def _with(balance: domain.Balance, **changes: Any) -> domain.Balance:
    return replace(balance, **changes)


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Dispatch by topic."""
    if incoming.topic == "remit.provider-adjustments.v1":
        return await on_adjustment(conn, parse_envelope(incoming.value, ProviderAdjustmentReceived))
    if incoming.topic == "remit.overpayments.v1":
        return await on_overpayment(conn, parse_envelope(incoming.value, OverpaymentDetected))
    if incoming.topic == "remit.staff-actions.v1":
        return await on_staff_action(conn, parse_envelope(incoming.value, StaffActionRecorded))
    return await on_interest(conn, parse_envelope(incoming.value, InterestAccrued))


async def check_forwarding_balances() -> None:
    """Alert once per forwarding balance still open after the configured days."""
    day = today(stage.settings)
    cutoff = day - timedelta(days=stage.settings.forwarding_balance_days)
    pool = await stage.pool()
    async with pool.acquire() as conn, conn.transaction():
        for row in await store.stale_forwarding_balances(conn, cutoff):
            open_amount = row["opened_amount"] - row["applied_amount"]
            source = envelopes.build(
                AlertRaised(
                    alert_id=stable_id("fb", row["tenant_id"], row["account_key"], row["reference"]),
                    kind="forwarding_balance_not_closed",
                    payer_id=row["payer_id"] or "",
                    reference=row["reference"],
                    amount=open_amount,
                    observed_on=day,
                    detail=f"forwarding balance {row['reference']} opened {row['opened_on']} still has "
                    f"{open_amount} open after {stage.settings.forwarding_balance_days} days",
                ),
                event_id=stable_id("fb", row["tenant_id"], row["account_key"], row["reference"]),
                event_type="AlertRaised",
                tenant_id=row["tenant_id"],
                account_key=row["account_key"],
                causation_id=f"forwarding balance {row['reference']}",
            )
            await outbox.add(conn, stage.service, str(source.event_id), Outgoing.event(ALERTS, source))
    await outbox.flush(stage)


async def refresh_gauges() -> None:
    """Ledger-wide gauges (open receivables and balance per payer policy, the unmatched queue and its age),
    read from the ledger itself."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        per_policy, unmatched, oldest = await store.open_totals(conn)
    metrics.show_ledger(per_policy, unmatched, oldest, today(stage.settings), installed=POLICIES)


stage.every(stage.settings.interest_tick_seconds, check_forwarding_balances, "forwarding-balance check")
stage.every(10.0, refresh_gauges, "ledger gauges")  # dashboards and the unmatched-age alert need them fresh
stage.consume(
    ["remit.provider-adjustments.v1", "remit.overpayments.v1", "remit.interest.v1", "remit.staff-actions.v1"],
    handle,
)
