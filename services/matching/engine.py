"""Matching's engine: how one PLB pair, overpayment, interest posting or staff action changes the ledger.

Per account (partition key) and in order: a positive ``WO`` reduces the receivable its reference names (FCN per
the payer's reference layout, then ICN, patient control number, trace number, then a scored search that never
auto-applies below the confidence threshold); money goes to interest first. A ``WO`` without a reference is a
lump recoupment spread oldest first. What matches nothing waits in the unmatched queue and is re-matched when
its receivable appears. ``FB`` opens/applies forwarding balances (``forwarding``), ``72`` turns the paired
``WO`` into a refund acknowledgement (``refunds``), everything else is classified and recorded, never applied.
The money moves they share are in ``ledger``, pure rules in ``domain``, SQL in ``store``; ``app`` is wiring.
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
    InterestAccrued,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    StaffActionRecorded,
)
from contracts.money import ZERO
from policies.config import PolicyConfigError
from services.matching import domain, store
from services.matching.forwarding import apply_forwarding, open_forwarding
from services.matching.ledger import (
    POLICY,
    SETTINGS,
    Explanation,
    alert,
    announce,
    apply_money,
    offset_event,
    parked_pair,
    resplit,
)
from services.matching.refunds import (
    RECORDED_REFUND,
    acknowledge_recorded_refund,
    acknowledge_refund,
    refund_acknowledged,
    unknown_receivable_refund,
)
from shared.ids import receivable_id, stable_id
from shared.messages import Outgoing, Rejected

log = logging.getLogger(__name__)


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
    threshold = SETTINGS.match_confidence_threshold
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
    named = len(rows) == 1 and out.method != "oldest_first"
    for found in rows:
        if left <= 0:
            break
        day = adj.payment_date
        row, moved = (
            await make_room(conn, env, found, left, day, f"{cause} of {day}") if named else (found, [])
        )
        out.outputs += moved
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
    if refunds and out.unmatched > 0 and domain.refund_pair_nets(adj.amount, [r["amount"] for r in refunds]):
        out.awaiting, out.unmatched = out.unmatched, ZERO
        out.bucket = "refund_acknowledged"
        out.reason = unknown_receivable_refund(reference)


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
        unmatched=out.unmatched + out.awaiting,  # a refund pair's share moves to awaiting_refund below
        reason=out.reason,
        method=out.method,
        suggestion=out.suggestion,
    )
    if out.awaiting > 0:
        await store.await_refund(conn, tenant, env.event_id, out.awaiting, out.reason)
    event = offset_event(
        env, adj, env.event_id, out.bucket, out.reason, tuple(out.allocations), out.unmatched, out.event_type
    )
    return [event, *out.outputs]


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


async def on_overpayment(conn: asyncpg.Connection, env: Envelope[OverpaymentDetected]) -> list[Outgoing]:
    """Open or grow the receivable, then re-match recoveries that arrived before it."""
    op, tenant, account = env.payload, env.tenant_id, env.account_key
    change, row = await store.open_or_grow(conn, tenant, account, op)
    if change == "ReceivableIncreased":  # a settled receivable owes again when the principal grows
        await store.save_balance(conn, tenant, op.receivable_id, store.balance_of(row), status_now(row))
    outputs: list[Outgoing] = []
    for absorbed in op.merged_receivables:
        outputs += await merge(conn, env, absorbed)
    if op.merged_receivables:
        fresh = await store.lock_receivable(conn, tenant, op.receivable_id)
        assert fresh is not None
        row = fresh
    if change is not None:
        outputs.append(
            await announce(
                conn,
                env,
                row,
                store.balance_of(row),
                change,
                ZERO if change == "ReceivableUpdated" else op.evidence_amount,
                op.determination_date,
                op.source,
            )
        )
    keys = await store.receivable_keys(conn, tenant, op.receivable_id)
    netted = op.netted_in_remittance
    if netted is not None and not await store.deferral_in(conn, tenant, netted, keys):
        fresh = await store.lock_receivable(conn, tenant, op.receivable_id)
        assert fresh is not None
        why = f"the netting in {op.source}"
        fresh, moved = await make_room(conn, env, fresh, op.evidence_amount, op.determination_date, why)
        outputs += moved
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
    reason = f"re-matched to {op.reference} after the receivable appeared"
    outputs += await rematch_parked(conn, env, op.receivable_id, keys, reason)
    for waiting in await store.take_pending_actions(conn, tenant, op.payer_id, keys):
        outputs += await on_staff_action(conn, parse_envelope(waiting, StaffActionRecorded))
    return outputs


async def make_room(
    conn: asyncpg.Connection, env: Envelope[Any], row: asyncpg.Record, amount: Decimal, day: date, why: str
) -> tuple[asyncpg.Record, list[Outgoing]]:
    """Money dated ``day`` that one receivable owes less than: if later-dated recoupments took the balance
    first (their files arrived earlier), this money comes first by business date and they give way. Returns
    the receivable as it stands then, and the re-explained recoupments."""
    shortfall = amount - store.balance_of(row).open
    if shortfall <= 0:
        return row, []
    moved = await displace_later_offsets(conn, env, row, day, shortfall, why)
    fresh = await store.lock_receivable(conn, env.tenant_id, row["receivable_id"])
    assert fresh is not None
    return fresh, moved


async def displace_later_offsets(
    conn: asyncpg.Connection, env: Envelope[Any], row: asyncpg.Record, after: date, amount: Decimal, why: str
) -> list[Outgoing]:
    """Money dated ``after`` arrived late, but recoupments dated later, seen first, already took the balance:
    by business date the earlier money comes first, so up to ``amount`` of those later recoupments (latest
    first) goes back to the work queue as excess, re-explained so staff hear of it, and the ledger ends as it
    would have in order."""
    reason = f"exceeds the open balance of {row['reference']} once {why} is counted"
    touched = await store.displace_offsets_after(
        conn, env.tenant_id, row["receivable_id"], after, amount, reason
    )
    outputs: list[Outgoing] = []
    for pair in touched:
        outputs.append(
            offset_event(
                env,
                parked_pair(pair),
                stable_id(pair["adjustment_id"], "displaced", env.event_id),
                "unmatched",
                reason,
                (),
                pair["displaced"],
                rematch_of=pair["adjustment_id"],
            )
        )
    if touched:
        await resplit(conn, env.tenant_id, row)
    return outputs


async def merge(
    conn: asyncpg.Connection, env: Envelope[OverpaymentDetected], absorbed: UUID
) -> list[Outgoing]:
    """Detection proved ``absorbed`` to be the same debt as the evidence's receivable: move its recoveries,
    identifiers and write-offs over and close it as merged, then re-split the survivor's money by business date.

    Both receivables say so in their history (``offsetstream receivable REF`` shows the merge on either), and
    both announce the change, so interest reverses the absorbed one's charges and recomputes the survivor's
    from the merged principal, determination date and recoveries: the ledger ends as if they had been one
    receivable from the start."""
    op, tenant = env.payload, env.tenant_id
    gone = await store.lock_receivable(conn, tenant, absorbed)
    keep = await store.lock_receivable(conn, tenant, op.receivable_id)
    if gone is None or keep is None or gone["merged_into"] is not None:
        return []
    moved = store.balance_of(gone)
    ran_to = await store.latest_business_date(conn, tenant, [absorbed, op.receivable_id])
    effective = max(op.determination_date, ran_to or op.determination_date)
    await store.merge_into(conn, tenant, absorbed, op.receivable_id, effective)
    keys = await store.receivable_keys(conn, tenant, op.receivable_id)
    for netted in await store.netting_remittances(conn, tenant, op.receivable_id):
        if await store.deferral_in(conn, tenant, netted, keys):  # the deferral named the other identifier
            await store.cancel_netting(conn, tenant, op.receivable_id, netted)
    cause = f"same debt as {keep['reference']}, linked by {op.source}"
    outputs: list[Outgoing] = []
    gone = await store.lock_receivable(conn, tenant, absorbed)
    assert gone is not None
    after_gone, _ = await resplit(conn, tenant, gone)
    outputs.append(
        await announce(
            conn,
            env,
            gone,
            after_gone,
            "ReceivableMerged",
            moved.principal,
            effective,
            f"merged into {keep['reference']}: {cause}",
        )
    )
    keep = await store.lock_receivable(conn, tenant, op.receivable_id)
    assert keep is not None
    after_keep, _ = await resplit(conn, tenant, keep)
    outputs.append(
        await announce(
            conn,
            env,
            keep,
            after_keep,
            "ReceivableMerged",
            ZERO,
            effective,
            f"absorbed {gone['reference']} ({moved.principal_recovered + moved.interest_recovered} recovered there "
            f"moves here): same debt, linked by {op.source}",
            money_key=absorbed,
        )
    )
    return outputs


async def rematch_parked(
    conn: asyncpg.Connection, env: Envelope[Any], rid: UUID, keys: list[str], reason: str
) -> list[Outgoing]:
    """Apply recoveries parked as unmatched that name this receivable, oldest first, while it is open.

    They were parked because the receivable did not exist yet, or because it owed less than they brought
    when they came (interest due before their payment date had not been charged yet)."""
    outputs: list[Outgoing] = []
    for parked in await store.parked_recoveries(conn, env.tenant_id, env.account_key, keys):
        row = await store.lock_receivable(conn, env.tenant_id, rid)
        assert row is not None
        if store.balance_of(row).open <= 0:
            break
        refund = parked["unmatched_amount"] <= 0  # a 72 + WO refund acknowledged before its receivable
        note = f"refund acknowledged by the payer (72 on the same reference), applied to {row['reference']}"
        adj = parked_pair(parked)
        cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (re-matched)"
        rematch_id = stable_id(parked["adjustment_id"], "rematch", env.event_id)
        applied, allocation, events = await apply_money(
            conn,
            env,
            parked["adjustment_id"],
            row,
            parked["awaiting_refund"] if refund else parked["unmatched_amount"],
            adj.payment_date,
            cause,
            kind="refund" if refund else "offset",
            rematch=rematch_id,
        )
        left = applied.remainder
        if refund:
            await store.reduce_awaiting(conn, env.tenant_id, parked["adjustment_id"], left, note)
        else:
            await store.reduce_unmatched(conn, env.tenant_id, parked["adjustment_id"], left, reason)
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
    displaced: list[Outgoing] = []
    if accrual.amount < 0:
        excess = await store.over_recovered(conn, tenant, accrual.receivable_id)
        if excess > 0:  # recoveries had paid interest this correction takes back: the latest give way
            why = f"the interest correction of period {accrual.period_number}"
            displaced = await displace_later_offsets(conn, env, row, date.min, excess, why)
    after, _ = await resplit(conn, tenant, row)
    version = f" v{accrual.version}" if accrual.version > 1 else ""
    cause = f"interest period {accrual.period_number}{version} ({accrual.period_start}..{accrual.period_end})"
    closed_on = row["written_off_in_full"]
    if closed_on is not None and due <= closed_on and after.open != 0:
        # Written off in full on a date this charge was already due by: the write-off covers it too.
        after = _with(after, written_off=max(after.written_off + after.open, ZERO))
        await store.save_balance(conn, tenant, row["receivable_id"], after, domain.status_of(after))
        cause += f", written off with the balance on {closed_on}"
    outputs = [*displaced, await announce(conn, env, row, after, "InterestAdded", accrual.amount, due, cause)]
    if after.open > 0 and accrual.amount > 0:
        outputs += await use_refund_credits(conn, env, accrual.receivable_id, due)
    if after.open > 0 and accrual.amount > 0:
        keys = await store.receivable_keys(conn, tenant, accrual.receivable_id)
        reason = f"re-matched to {row['reference']} after interest due before it was charged"
        outputs += await rematch_parked(conn, env, accrual.receivable_id, keys, reason)
    return outputs


async def use_refund_credits(
    conn: asyncpg.Connection, env: Envelope[InterestAccrued], rid: UUID, due: date
) -> list[Outgoing]:
    """Interest due by a refund check's date was charged after the check was applied: the check's excess pays
    it, as it would have if the charge had been known on that date."""
    outputs: list[Outgoing] = []
    for credit in await store.refund_credits(conn, env.tenant_id, rid, due):
        row = await store.lock_receivable(conn, env.tenant_id, rid)
        assert row is not None
        if store.balance_of(row).open <= 0:
            break
        applied, _, events = await apply_money(
            conn,
            env,
            credit["action_id"],
            row,
            credit["amount"],
            credit["effective_date"],
            f"refund check of {credit['effective_date']}: the part above the balance then known",
            kind="refund",
            rematch=stable_id(credit["action_id"], "credit", env.event_id),
        )
        await store.keep_refund_credit(
            conn, env.tenant_id, credit["action_id"], rid, credit["effective_date"], applied.remainder
        )
        outputs += events
    return outputs


async def on_staff_action(conn: asyncpg.Connection, env: Envelope[StaffActionRecorded]) -> list[Outgoing]:
    """Appeals pause and resume recoupment; a won appeal or a write-off closes the rest; a refund check pays.

    A repayment schedule moves no money and changes no balance (its installments arrive as refund checks or
    recoupments): it is the interest stage's fact, ignored here.
    """
    action, tenant = env.payload, env.tenant_id
    if action.kind == "repayment_schedule_granted":
        return []
    row = await staff_target(conn, tenant, action.payer_id, action.reference.strip())
    if row is None:
        # The overpayment may still be on its way (another topic): wait for it rather than dead-letter.
        await store.park_action(
            conn,
            tenant,
            action.action_id,
            env.account_key,
            action.payer_id,
            action.reference.strip(),
            action.effective_date,
            env.model_dump_json().encode(),
        )
        log.info("staff action %s waits for receivable %s", action.kind, action.reference.strip())
        return []
    before = store.balance_of(row)
    cause = f"staff {action.entered_by}: {action.kind.replace('_', ' ')}"
    if action.kind == "refund_sent":
        amount = action.amount if action.amount is not None else before.open
        applied, _, outputs = await apply_money(
            conn, env, action.action_id, row, amount, action.effective_date, cause, kind="refund"
        )
        if action.amount is not None and applied.remainder > 0:
            await store.keep_refund_credit(
                conn, tenant, action.action_id, row["receivable_id"], action.effective_date, applied.remainder
            )
        return outputs
    if action.kind == "appeal_filed":
        after, change = _with(before, paused=True), "ReceivablePaused"
    elif action.kind == "appeal_decided" and action.outcome == "upheld":
        after, change = _with(before, paused=False), "ReceivableResumed"
    else:
        in_full = action.kind == "appeal_decided" or action.amount is None
        write = before.open if in_full else min(action.amount or ZERO, before.open)
        if in_full:
            await store.mark_written_off_in_full(conn, tenant, row["receivable_id"], action.effective_date)
        after, change = (
            _with(before, paused=False, written_off=before.written_off + max(write, ZERO)),
            "ReceivableWrittenOff",
        )
    await store.save_balance(conn, tenant, row["receivable_id"], after, domain.status_of(after))
    amount = after.written_off - before.written_off
    return [await announce(conn, env, row, after, change, amount, action.effective_date, cause)]


async def staff_target(
    conn: asyncpg.Connection, tenant: str, payer_id: str, reference: str
) -> asyncpg.Record | None:
    """The live receivable a staff action names: by its own reference (following a merge), else by any
    identifier it is known by (the correction's claim number, a letter's FCN) when exactly one has it."""
    row = await store.live_receivable(conn, tenant, receivable_id(tenant, payer_id, reference))
    if row is not None:
        return row
    found = await store.find_by_key(conn, tenant, payer_id, reference)
    return await store.lock_receivable(conn, tenant, found[0]) if len(found) == 1 else None


def status_now(row: asyncpg.Record) -> str:
    """The status a receivable's stored figures call for."""
    return domain.status_of(store.balance_of(row))


def _with(balance: domain.Balance, **changes: Any) -> domain.Balance:
    return replace(balance, **changes)
