"""SQL for work-queue items: ``matching.work_items``, ``matching.work_item_actions`` and the pair's
``dismissed_amount`` (migration 0022)."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.matching.records import StoredPair
from services.matching.store._base import PAIR_COLUMNS, PgBase, pair_of


class PgWorkItems(PgBase):
    """Work items: assignee, dismissal, action history."""

    async def lock_pair(self, tenant_id: str, adjustment_id: UUID) -> StoredPair | None:
        row = await self.conn.fetchrow(
            f"""SELECT {PAIR_COLUMNS} FROM matching.adjustments
                WHERE tenant_id = $1 AND adjustment_id = $2 FOR UPDATE""",  # noqa: S608 (fixed columns)
            tenant_id,
            adjustment_id,
        )
        return None if row is None else pair_of(row)

    async def work_item_action_known(self, tenant_id: str, action_id: UUID) -> bool:
        found = await self.conn.fetchval(
            "SELECT 1 FROM matching.work_item_actions WHERE tenant_id = $1 AND action_id = $2",
            tenant_id,
            action_id,
        )
        return found is not None

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
        await self.conn.execute(
            """INSERT INTO matching.work_item_actions (tenant_id, action_id, adjustment_id, kind, outcome, detail,
                   note, entered_by, entered_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING""",
            tenant_id,
            action_id,
            adjustment_id,
            kind,
            outcome,
            detail,
            note,
            entered_by,
            entered_at,
        )

    async def dismiss(
        self, tenant_id: str, adjustment_id: UUID, amount: Decimal, bucket: str, by: str, at: datetime
    ) -> None:
        await self.conn.execute(
            """UPDATE matching.adjustments SET unmatched_amount = 0, bucket = $4,
                   dismissed_amount = dismissed_amount + $3::numeric
               WHERE tenant_id = $1 AND adjustment_id = $2""",
            tenant_id,
            adjustment_id,
            amount,
            bucket,
        )
        await self.conn.execute(
            """INSERT INTO matching.work_items (tenant_id, adjustment_id, dismissed_by, dismissed_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id, adjustment_id)
               DO UPDATE SET dismissed_by = EXCLUDED.dismissed_by, dismissed_at = EXCLUDED.dismissed_at""",
            tenant_id,
            adjustment_id,
            by,
            at,
        )

    async def assign(
        self, tenant_id: str, adjustment_id: UUID, assignee: str | None, by: str, at: datetime
    ) -> None:
        await self.conn.execute(
            """INSERT INTO matching.work_items (tenant_id, adjustment_id, assignee, assigned_by, assigned_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, adjustment_id) DO UPDATE
                   SET assignee = EXCLUDED.assignee, assigned_by = EXCLUDED.assigned_by,
                       assigned_at = EXCLUDED.assigned_at
                   WHERE matching.work_items.assigned_at IS NULL
                      OR matching.work_items.assigned_at <= EXCLUDED.assigned_at""",
            tenant_id,
            adjustment_id,
            assignee,
            by,
            at,
        )
