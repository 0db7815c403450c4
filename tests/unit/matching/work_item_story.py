"""Work-queue steps for the matching story driver (``ledger_story``): a ``WorkItemActionRecorded`` as the console
or ``offsetstream queue`` builds it, delivered as the stage delivers it. Imported as ``matching.work_item_story``
by the unit tests of this folder and the repository parity test."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from matching.ledger_story import PAYEE, PAYER, LedgerStory

from contracts.envelope import Envelope
from contracts.events import WORK_ITEM_EVENT_TYPES, WorkItemActionRecorded
from services.matching.work_items import on_work_item_action
from shared import envelopes
from shared.ids import account_key, stable_id
from shared.messages import Outgoing


def action_env(
    story: LedgerStory,
    kind: str,
    item: UUID,
    *,
    reference: str | None = None,
    assignee: str | None = None,
    note: str | None = None,
    at: str = "2026-09-01T10:00:00",
    request: str = "r1",
    payee: str = PAYEE,
) -> Envelope[WorkItemActionRecorded]:
    action = WorkItemActionRecorded(
        action_id=stable_id("work-item", story.tenant, item, kind, reference, assignee, note, request),
        kind=kind,
        item_id=item,
        payer_id=PAYER,
        payee_id=payee,
        receivable_reference=reference,
        assignee=assignee,
        note=note,
        entered_by="biller-1",
        entered_at=datetime.fromisoformat(at).replace(tzinfo=UTC),
    )
    return envelopes.build(
        action,
        event_id=action.action_id,
        event_type=WORK_ITEM_EVENT_TYPES[kind],
        tenant_id=story.tenant,
        account_key=account_key(story.tenant, PAYER, payee),
        causation_id="staff:biller-1",
    )


async def deliver(story: LedgerStory, env: Envelope[WorkItemActionRecorded]) -> list[Outgoing]:
    """As the stage does: a redelivered event id yields its recorded outputs, the handler does not run."""
    if env.event_id in story.processed:
        return story.processed[env.event_id]
    outputs = await on_work_item_action(story.matching, env)
    story.processed[env.event_id] = outputs
    story.published += outputs
    return outputs


async def act(story: LedgerStory, kind: str, item: UUID, **kw: Any) -> list[Outgoing]:
    return await deliver(story, action_env(story, kind, item, **kw))
