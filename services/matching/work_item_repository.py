"""The port of the work-queue steps staff take (``work_items``): the PLB pair an item is, and the item's
assignee, dismissal and action history. Part of :class:`~services.matching.repository.MatchingRepository`;
SQL in ``store.work_items`` (migration 0022), dictionaries in ``memory.work_items``."""

from datetime import datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from services.matching.records import StoredPair


class WorkItemRepository(Protocol):
    """Work-queue items (PLB pairs) and what staff did with them."""

    async def lock_pair(self, tenant_id: str, adjustment_id: UUID) -> StoredPair | None:
        """The PLB pair, locked for update (the work item staff act on)."""

    async def work_item_action_known(self, tenant_id: str, action_id: UUID) -> bool:
        """Whether this work-item action was recorded already (applied or refused)."""

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
        """One line of the item's action history, once per action id (``note``: staff's text, kind note)."""

    async def dismiss(
        self, tenant_id: str, adjustment_id: UUID, amount: Decimal, bucket: str, by: str, at: datetime
    ) -> None:
        """Staff said the item's money is not ours: ``amount`` leaves the queue into ``dismissed_amount`` (the
        pair's unmatched money becomes zero; its bucket becomes ``bucket``); who and when are kept."""

    async def assign(
        self, tenant_id: str, adjustment_id: UUID, assignee: str | None, by: str, at: datetime
    ) -> None:
        """Give the item to ``assignee`` (none: nobody), unless a later assignment is already recorded."""
