"""Matching's engine for what changes a receivable itself: detection's evidence (open, grow, merge, claim
netting), the interest stage's accruals and corrections, and staff actions (appeals, write-offs, refund checks),
which may arrive before the receivable they name and then wait for it.
"""

import logging
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope, parse_envelope
from contracts.events import InterestAccrued, OverpaymentDetected, StaffActionRecorded
from contracts.money import ZERO
from services.matching import domain
from services.matching.ledger import Matching, announce, apply_money, resplit
from services.matching.records import Receivable
from services.matching.rematch import (
    displace_later_offsets,
    locked,
    make_room,
    rematch_parked,
    withdraw_guesses,
)
from shared.ids import receivable_id, stable_id
from shared.messages import Outgoing

log = logging.getLogger(__name__)


async def on_overpayment(m: Matching, env: Envelope[OverpaymentDetected]) -> list[Outgoing]:
    """Open or grow the receivable, then re-match recoveries that arrived before it."""
    op, tenant = env.payload, env.tenant_id
    change, row = await open_or_grow(m, env)
    if change == "ReceivableIncreased":  # a settled receivable owes again when the principal grows
        await m.repo.save_balance(tenant, op.receivable_id, row.balance, status_now(row))
    outputs: list[Outgoing] = []
    for absorbed in op.merged_receivables:
        outputs += await merge(m, env, absorbed)
    if op.merged_receivables:
        row = await locked(m, tenant, op.receivable_id)
    if change is not None:
        outputs.append(
            await announce(
                m,
                env,
                row,
                row.balance,
                change,
                ZERO if change == "ReceivableUpdated" else op.evidence_amount,
                op.determination_date,
                op.source,
            )
        )
    keys = await m.repo.receivable_keys(tenant, op.receivable_id)
    netted = op.netted_in_remittance
    if netted is not None and not await m.repo.deferral_in(tenant, netted, keys):
        fresh = await locked(m, tenant, op.receivable_id)
        why = f"the netting in {op.source}"
        fresh, moved = await make_room(m, env, fresh, op.evidence_amount, op.determination_date, why)
        outputs += moved
        if fresh.balance.open > 0:
            _, _, events = await apply_money(
                m,
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
    withdrawn, guessed_for = await withdraw_guesses(m, env, op.receivable_id, op.reference, keys)
    outputs += withdrawn
    reason = f"re-matched to {op.reference} after the receivable appeared"
    outputs += await rematch_parked(m, env, op.receivable_id, keys, reason)
    for other in guessed_for:
        row = await locked(m, tenant, other)
        other_keys = await m.repo.receivable_keys(tenant, other)
        why = f"re-matched to {row.reference} after a recovery guessed for it went to {op.reference}"
        outputs += await rematch_parked(m, env, other, other_keys, why)
    for waiting in await m.repo.take_pending_actions(tenant, op.payer_id, keys):
        outputs += await on_staff_action(m, parse_envelope(waiting, StaffActionRecorded))
    return outputs


async def open_or_grow(m: Matching, env: Envelope[OverpaymentDetected]) -> tuple[str | None, Receivable]:
    """Create the receivable or raise its principal to the merged principal, keep the facts the evidence
    adds, and know it by every identifier the evidence names; say which change that was
    (:func:`domain.evidence_change`) and return the receivable as it stands."""
    op, tenant, account = env.payload, env.tenant_id, env.account_key
    known = await m.repo.lock_receivable(tenant, op.receivable_id)
    evidence = domain.Facts(
        op.principal, op.determination_date, op.duplicate, op.original_payment_date, op.identified_on
    )
    change = domain.evidence_change(None if known is None else known.facts, evidence)
    if known is None:
        await m.repo.open_receivable(tenant, account, op)
    else:
        await m.repo.note_facts(
            tenant, op.receivable_id, op.duplicate, op.original_payment_date, op.identified_on
        )
        if change == "ReceivableIncreased":
            await m.repo.grow(tenant, op.receivable_id, op.principal, op.determination_date)
    keys = [
        ("reference", op.reference),
        *(("icn", k) for k in op.claim_references),
        *(("pcn", k) for k in op.patient_control_numbers),
        *(("trace", k) for k in op.trace_numbers),
    ]
    await m.repo.add_keys(tenant, account, op.receivable_id, [(kind, key) for kind, key in keys if key])
    return change, await locked(m, tenant, op.receivable_id)


async def merge(m: Matching, env: Envelope[OverpaymentDetected], absorbed: UUID) -> list[Outgoing]:
    """Detection proved ``absorbed`` to be the same debt as the evidence's receivable: move its recoveries,
    identifiers and write-offs over and close it as merged, then re-split the survivor's money by business date.

    Both receivables say so in their history (``offsetstream receivable REF`` shows the merge on either), and
    both announce the change, so interest reverses the absorbed one's charges and recomputes the survivor's
    from the merged principal, determination date and recoveries: the ledger ends as if they had been one
    receivable from the start."""
    op, tenant = env.payload, env.tenant_id
    gone = await m.repo.lock_receivable(tenant, absorbed)
    keep = await m.repo.lock_receivable(tenant, op.receivable_id)
    if gone is None or keep is None or gone.merged_into is not None:
        return []
    moved = gone.balance
    ran_to = await m.repo.latest_business_date(tenant, [absorbed, op.receivable_id])
    effective = max(op.determination_date, ran_to or op.determination_date)
    await m.repo.merge_into(tenant, absorbed, op.receivable_id, effective)
    keys = await m.repo.receivable_keys(tenant, op.receivable_id)
    for netted in await m.repo.netting_remittances(tenant, op.receivable_id):
        if await m.repo.deferral_in(tenant, netted, keys):  # the deferral named the other identifier
            await m.repo.cancel_netting(tenant, op.receivable_id, netted)
    cause = f"same debt as {keep.reference}, linked by {op.source}"
    outputs: list[Outgoing] = []
    gone = await locked(m, tenant, absorbed)
    after_gone, _ = await resplit(m, tenant, gone)
    outputs.append(
        await announce(
            m,
            env,
            gone,
            after_gone,
            "ReceivableMerged",
            moved.principal,
            effective,
            f"merged into {keep.reference}: {cause}",
        )
    )
    keep = await locked(m, tenant, op.receivable_id)
    after_keep, _ = await resplit(m, tenant, keep)
    outputs.append(
        await announce(
            m,
            env,
            keep,
            after_keep,
            "ReceivableMerged",
            ZERO,
            effective,
            f"absorbed {gone.reference} ({moved.principal_recovered + moved.interest_recovered} recovered there "
            f"moves here): same debt, linked by {op.source}",
            money_key=absorbed,
        )
    )
    return outputs


async def on_interest(m: Matching, env: Envelope[InterestAccrued]) -> list[Outgoing]:
    """Add an accrued period's interest, or a signed correction, then re-split recoveries by business date
    (a charge due before a recovery's date takes that recovery's money first)."""
    accrual, tenant = env.payload, env.tenant_id
    row = await m.repo.lock_receivable(tenant, accrual.receivable_id)
    due = accrual.period_end + timedelta(days=1)
    rid, period = accrual.receivable_id, accrual.period_number
    if row is None or not await m.repo.add_interest(tenant, env.event_id, rid, accrual.amount, due, period):
        return []
    amount = await count_interest(m, tenant, rid, period)
    if amount is None:
        log.info("interest period %s of %s waits for the charge it corrects", period, row.reference)
        return []
    displaced: list[Outgoing] = []
    if amount < 0:
        excess = await m.repo.over_recovered(tenant, accrual.receivable_id)
        if excess > 0:  # recoveries had paid interest this correction takes back: the latest give way
            why = f"the interest correction of period {accrual.period_number}"
            displaced = await displace_later_offsets(m, env, row, date.min, excess, why)
    after, _ = await resplit(m, tenant, row)
    version = f" v{accrual.version}" if accrual.version > 1 else ""
    cause = f"interest period {accrual.period_number}{version} ({accrual.period_start}..{accrual.period_end})"
    closed_on = row.written_off_in_full
    if closed_on is not None and due <= closed_on and after.open != 0:
        # Written off in full on a date this charge was already due by: the write-off covers it too.
        after = _with(after, written_off=max(after.written_off + after.open, ZERO))
        await m.repo.save_balance(tenant, row.receivable_id, after, domain.status_of(after))
        cause += f", written off with the balance on {closed_on}"
    outputs = [*displaced, await announce(m, env, row, after, "InterestAdded", amount, due, cause)]
    if after.open > 0 and amount > 0:
        outputs += await use_refund_credits(m, env, accrual.receivable_id, due)
    if after.open > 0 and amount > 0:
        keys = await m.repo.receivable_keys(tenant, accrual.receivable_id)
        reason = f"re-matched to {row.reference} after interest due before it was charged"
        outputs += await rematch_parked(m, env, accrual.receivable_id, keys, reason)
    return outputs


async def count_interest(m: Matching, tenant: str, rid: UUID, period: int) -> Decimal | None:
    """Count an interest period's postings as :func:`domain.period_count` says (the one just recorded among
    them): what the receivable's counted interest changes by, or None when the period counts for nothing yet
    (a correction that overtook the charge it corrects)."""
    count = domain.period_count(await m.repo.period_postings(tenant, rid, period))
    if count.flipped:
        await m.repo.hold_interest(tenant, [p.event_id for p in count.flipped], not count.counts)
    if not count.counts and count.change == 0:
        return None
    return count.change


async def use_refund_credits(
    m: Matching, env: Envelope[InterestAccrued], rid: UUID, due: date
) -> list[Outgoing]:
    """Interest due by a refund check's date was charged after the check was applied: the check's excess pays
    it, as it would have if the charge had been known on that date."""
    outputs: list[Outgoing] = []
    for credit in await m.repo.refund_credits(env.tenant_id, rid, due):
        row = await locked(m, env.tenant_id, rid)
        if row.balance.open <= 0:
            break
        applied, _, events = await apply_money(
            m,
            env,
            credit.action_id,
            row,
            credit.amount,
            credit.effective_date,
            f"refund check of {credit.effective_date}: the part above the balance then known",
            kind="refund",
            rematch=stable_id(credit.action_id, "credit", env.event_id),
        )
        await m.repo.keep_refund_credit(
            env.tenant_id, credit.action_id, rid, credit.effective_date, applied.remainder
        )
        outputs += events
    return outputs


async def on_staff_action(m: Matching, env: Envelope[StaffActionRecorded]) -> list[Outgoing]:
    """Appeals pause and resume recoupment; a won appeal or a write-off closes the rest; a refund check pays.

    A repayment schedule moves no money and changes no balance (its installments arrive as refund checks or
    recoupments): it is the interest stage's fact, ignored here.
    """
    action, tenant = env.payload, env.tenant_id
    if action.kind == "repayment_schedule_granted":
        return []
    row = await staff_target(m, tenant, action.payer_id, action.reference.strip())
    if row is None:
        # The overpayment may still be on its way (another topic): wait for it rather than dead-letter.
        await m.repo.park_action(
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
    before = row.balance
    cause = f"staff {action.entered_by}: {action.kind.replace('_', ' ')}"
    if action.kind == "refund_sent":
        amount = action.amount if action.amount is not None else before.open
        applied, _, outputs = await apply_money(
            m, env, action.action_id, row, amount, action.effective_date, cause, kind="refund"
        )
        if action.amount is not None and applied.remainder > 0:
            await m.repo.keep_refund_credit(
                tenant, action.action_id, row.receivable_id, action.effective_date, applied.remainder
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
            await m.repo.mark_written_off_in_full(tenant, row.receivable_id, action.effective_date)
        after, change = (
            _with(before, paused=False, written_off=before.written_off + max(write, ZERO)),
            "ReceivableWrittenOff",
        )
    await m.repo.save_balance(tenant, row.receivable_id, after, domain.status_of(after))
    amount = after.written_off - before.written_off
    return [await announce(m, env, row, after, change, amount, action.effective_date, cause)]


async def staff_target(m: Matching, tenant: str, payer_id: str, reference: str) -> Receivable | None:
    """The live receivable a staff action names: by its own reference (following a merge), else by any
    identifier it is known by (the correction's claim number, a letter's FCN) when exactly one has it."""
    row = await live_receivable(m, tenant, receivable_id(tenant, payer_id, reference))
    if row is not None:
        return row
    found = await m.repo.find_by_key(tenant, payer_id, reference)
    return await m.repo.lock_receivable(tenant, found[0]) if len(found) == 1 else None


async def live_receivable(m: Matching, tenant: str, rid: UUID) -> Receivable | None:
    """A receivable for update, following merges to the one that absorbed it (a staff action may name a
    receivable by a reference that now lives in another); None past 32 links (a cycle no merge makes)."""
    for _ in range(32):
        row = await m.repo.lock_receivable(tenant, rid)
        if row is None or row.merged_into is None:
            return row
        rid = row.merged_into
    return None


def status_now(row: Receivable) -> str:
    """The status a receivable's stored figures call for."""
    return domain.status_of(row.balance)


def _with(balance: domain.Balance, **changes: Any) -> domain.Balance:
    return replace(balance, **changes)
