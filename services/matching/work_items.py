"""The work-queue steps staff take (``remit.work-items.v1``), applied by matching, which owns the work queue.

A work item is a PLB pair whose withheld money no receivable explains yet (``cli.matching_views.work_queue``;
its id is the pair's ``adjustment_id``). Staff (console, ``offsetstream queue``) publish one
:class:`~contracts.events.WorkItemActionRecorded` per step:

- ``link``: the item's unmatched money is applied to the named receivable of the same account exactly as a
  re-match applies parked money (``rematch.rematch_parked``): an allocation whose source is the item's PLB pair,
  the receivable's ``ReceivableReduced``/``Settled`` change, and an ``OffsetApplied`` naming the pair in
  ``rematch_of``; what the receivable does not owe stays in the queue. An unknown receivable, one of another
  account, one that owes nothing, or an item with no withheld money waiting is **refused and recorded** (the
  item's action history says why, the console shows it), not dead-lettered: the event is well formed, the
  staff member's choice was not, and they must see the answer where they made it.
- ``not_ours``: the waiting money leaves the queue into ``dismissed_amount`` (bucket ``staff_dismissed`` when
  none of the pair was explained otherwise), with who and when; nothing is dropped. It is announced as an
  ``OffsetDismissed`` (bucket ``staff_dismissed``, ``rematch_of`` the item's offset), so notification closes
  the item's ``unmatched_recovery`` as it does for a re-match.
- ``assign`` / ``note``: the item's assignee (latest entry wins) and notes history.

Every action is recorded once per ``action_id`` (applied or refused), so a redelivery changes nothing. A note's
text is stored for the tenant's staff and goes nowhere else: not in logs, events, alerts or metric labels.
"""

import logging
from decimal import Decimal

from prometheus_client import Counter

from contracts.envelope import Envelope
from contracts.events import WorkItemActionRecorded
from services.matching.ledger import Matching, apply_money, offset_event
from services.matching.records import Receivable, StoredPair
from shared.ids import stable_id
from shared.messages import Outgoing

log = logging.getLogger(__name__)

DISMISSED_BUCKET = "staff_dismissed"
"""The bucket of a PLB pair whose money staff dismissed as not ours (``matching.adjustments.bucket``)."""

WORK_ITEM_ACTIONS = Counter(
    "remit_work_item_actions_total",
    "Staff steps on work-queue items, by kind and outcome.",
    ["kind", "outcome"],
)


class Refused(Exception):
    """A work-item action that cannot be applied as entered; ``detail`` says why (identifiers only)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def in_queue(pair: StoredPair) -> bool:
    """Whether the pair is in the work queue (``cli.matching_views.QUEUE_FILTER``)."""
    return pair.unmatched_amount > 0 or (pair.bucket == "deferral" and pair.match_reference is None)


async def on_work_item_action(m: Matching, env: Envelope[WorkItemActionRecorded]) -> list[Outgoing]:
    """Apply one staff step on a work item, or record why it was refused; once per action id."""
    act, tenant = env.payload, env.tenant_id
    if await m.repo.work_item_action_known(tenant, act.action_id):
        return []
    outputs: list[Outgoing] = []
    try:
        pair = await m.repo.lock_pair(tenant, act.item_id)
        if pair is None or pair.account_key != env.account_key:
            raise Refused("no such work item in this account")
        if act.kind == "link":
            outputs, detail = await _link(m, env, pair)
        elif act.kind == "not_ours":
            outputs, detail = await _dismiss(m, env, pair)
        elif act.kind == "assign":
            await m.repo.assign(tenant, pair.adjustment_id, act.assignee, act.entered_by, act.entered_at)
            detail = f"assigned to {act.assignee}" if act.assignee else "unassigned"
        else:
            detail = "note added"
        outcome = "applied"
    except Refused as refused:
        outcome, detail = "rejected", refused.detail
    await m.repo.record_work_item_action(
        tenant,
        act.action_id,
        act.item_id,
        act.kind,
        outcome,
        detail,
        act.note if act.kind == "note" and outcome == "applied" else None,
        act.entered_by,
        act.entered_at,
    )
    WORK_ITEM_ACTIONS.labels(act.kind, outcome).inc()
    # Identifiers only: never the note's text.
    log.info("work item %s: %s %s (action %s): %s", act.item_id, act.kind, outcome, act.action_id, detail)
    return outputs


async def _receivable(m: Matching, env: Envelope[WorkItemActionRecorded], pair: StoredPair) -> Receivable:
    """The live receivable the link names (reference or payer claim number), locked; refused unless it is of
    the item's account and still owes money."""
    reference = (env.payload.receivable_reference or "").strip()
    found = await m.repo.find_by_key(env.tenant_id, pair.payer_id, reference)
    if not found:
        raise Refused(f"no receivable {reference} of payer {pair.payer_id}")
    rows = [await m.repo.lock_receivable(env.tenant_id, rid) for rid in sorted(found)]
    mine = [r for r in rows if r is not None and r.account_key == pair.account_key]
    if not mine:
        raise Refused(f"receivable {reference} belongs to another account (payee) of payer {pair.payer_id}")
    owing = [r for r in mine if r.balance.open > 0]
    if not owing:
        raise Refused(f"receivable {reference} owes nothing (status {mine[0].status})")
    return sorted(owing, key=lambda r: (r.determination_date, r.reference))[0]


async def _link(
    m: Matching, env: Envelope[WorkItemActionRecorded], pair: StoredPair
) -> tuple[list[Outgoing], str]:
    """Apply the item's unmatched money to the receivable staff named, as a re-match applies parked money."""
    if pair.unmatched_amount <= 0:
        raise Refused(
            "a deferral holds no withheld money to apply: identify it with a letter instead"
            if in_queue(pair)
            else "nothing of this item waits in the work queue any more"
        )
    row = await _receivable(m, env, pair)
    act = env.payload
    adj = pair.as_adjustment()
    link_id = stable_id(pair.adjustment_id, "link", act.action_id)
    cause = f"TRN {adj.trace_number} PLB #{adj.segment_ordinal} pair {adj.pair_index} (linked by staff)"
    applied, allocation, events = await apply_money(
        m, env, pair.adjustment_id, row, pair.unmatched_amount, pair.payment_date, cause, rematch=link_id
    )
    left = applied.remainder
    reason = f"linked by staff to {row.reference} (work-item action {act.action_id})"
    if left > 0:
        reason += f"; {left} more than it owed stays in the work queue"
    await m.repo.reduce_unmatched(env.tenant_id, pair.adjustment_id, left, reason)
    offset = offset_event(
        env, adj, link_id, "allocated", reason, (allocation,), left, rematch_of=pair.adjustment_id
    )
    return [*events, offset], f"{applied.applied} applied to {row.reference}" + (
        f", {left} still waits" if left > 0 else ""
    )


async def _dismiss(
    m: Matching, env: Envelope[WorkItemActionRecorded], pair: StoredPair
) -> tuple[list[Outgoing], str]:
    """Move the item's waiting money out of the queue into the staff-dismissed bucket, announced as an
    ``OffsetDismissed`` naming the item's offset (notification tells staff the item left the queue)."""
    if not in_queue(pair):
        raise Refused("nothing of this item waits in the work queue any more")
    act = env.payload
    deferral = pair.unmatched_amount <= 0  # a deferral without a reference: the whole (negative) pair
    amount: Decimal = pair.amount if deferral else pair.unmatched_amount
    explained_otherwise = not deferral and pair.unmatched_amount < pair.amount
    bucket = pair.bucket if explained_otherwise else DISMISSED_BUCKET
    await m.repo.dismiss(env.tenant_id, pair.adjustment_id, amount, bucket, act.entered_by, act.entered_at)
    reason = f"{abs(amount)} dismissed by staff as not ours (work-item action {act.action_id})"
    offset = offset_event(
        env,
        pair.as_adjustment(),
        stable_id(pair.adjustment_id, "dismissed", act.action_id),
        DISMISSED_BUCKET,
        reason,
        (),
        Decimal("0.00"),
        event_type="OffsetDismissed",
        rematch_of=pair.adjustment_id,
    )
    return [offset], f"{abs(amount)} dismissed as not ours"
