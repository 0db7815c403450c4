"""Work-queue items in memory (as ``store.work_items``)."""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.matching.memory._tables import Tables, cents
from services.matching.records import StoredPair


@dataclass(frozen=True)
class WorkItemRow:
    """One ``matching.work_items`` row (plus the pair's ``dismissed_amount``)."""

    assignee: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    dismissed_by: str | None = None
    dismissed_at: datetime | None = None
    dismissed_amount: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class WorkItemActionRow:
    """One ``matching.work_item_actions`` row."""

    adjustment_id: UUID
    kind: str
    outcome: str
    detail: str
    note: str | None
    entered_by: str
    entered_at: datetime


class MemWorkItems(Tables):
    """Work items: assignee, dismissal, action history."""

    def __init__(self) -> None:
        super().__init__()
        self.work_items: dict[tuple[str, UUID], WorkItemRow] = {}
        self.work_item_actions: dict[tuple[str, UUID], WorkItemActionRow] = {}

    async def lock_pair(self, tenant_id: str, adjustment_id: UUID) -> StoredPair | None:
        return self.pairs.get((tenant_id, adjustment_id))

    async def work_item_action_known(self, tenant_id: str, action_id: UUID) -> bool:
        return (tenant_id, action_id) in self.work_item_actions

    async def record_work_item_action(
        self,
        tenant_id: str,
        action_id: UUID,
        adjustment_id: UUID,
        kind: str,
        outcome: str,
        detail: str,
        note: str | None,
        entered_by: str,
        entered_at: datetime,
    ) -> None:
        self.work_item_actions.setdefault(
            (tenant_id, action_id),
            WorkItemActionRow(adjustment_id, kind, outcome, detail, note, entered_by, entered_at),
        )

    async def dismiss(
        self, tenant_id: str, adjustment_id: UUID, amount: Decimal, bucket: str, by: str, at: datetime
    ) -> None:
        if (
            self._set_pair(tenant_id, adjustment_id, unmatched_amount=cents(Decimal(0)), bucket=bucket)
            is None
        ):
            return
        row = self.work_items.get((tenant_id, adjustment_id), WorkItemRow())
        self.work_items[tenant_id, adjustment_id] = replace(
            row, dismissed_by=by, dismissed_at=at, dismissed_amount=cents(row.dismissed_amount + amount)
        )

    async def assign(
        self, tenant_id: str, adjustment_id: UUID, assignee: str | None, by: str, at: datetime
    ) -> None:
        row = self.work_items.get((tenant_id, adjustment_id), WorkItemRow())
        if row.assigned_at is None or row.assigned_at <= at:
            row = replace(row, assignee=assignee, assigned_by=by, assigned_at=at)
        self.work_items[tenant_id, adjustment_id] = row
