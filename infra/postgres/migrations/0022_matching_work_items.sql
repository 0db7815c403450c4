-- Work-queue items and the steps staff take on them (issue 19 point 3): link to a receivable, not ours, assign,
-- note. The console and `offsetstream queue` publish WorkItemActionRecorded on remit.work-items.v1; matching,
-- which owns the work queue, is the only writer of these tables (services/matching/work_items.py).
--
-- A work item is a PLB pair of matching.adjustments (its adjustment_id is the queue's item id).
-- * not ours: the pair's unmatched money moves to dismissed_amount (bucket staff_dismissed when none of the
--   pair was allocated), so every cent is still accounted for: amount = allocated + unmatched + awaiting_refund
--   + dismissed (offsetstream ledger check). Who and when: work_items.dismissed_by / dismissed_at.
-- * assign: work_items.assignee, the latest by entered_at (assignments delivered out of order converge).
-- * every action, applied or refused (a link to an unknown, settled or other account's receivable is refused
--   and recorded here with the reason, not dead-lettered), is one row of work_item_actions, once per action_id;
--   the notes history is its rows of kind note. note holds staff's free text (may hold PHI): it is shown to
--   the tenant's staff only (row-level security, ops.enforce_tenancy) and never leaves this table.
ALTER TABLE matching.adjustments ADD COLUMN IF NOT EXISTS dismissed_amount numeric(14,2) NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS matching.work_items (
    tenant_id     text        NOT NULL,
    adjustment_id uuid        NOT NULL,
    assignee      text,
    assigned_by   text,
    assigned_at   timestamptz,
    dismissed_by  text,
    dismissed_at  timestamptz,
    PRIMARY KEY (tenant_id, adjustment_id)
);

CREATE TABLE IF NOT EXISTS matching.work_item_actions (
    tenant_id     text        NOT NULL,
    action_id     uuid        NOT NULL,
    adjustment_id uuid        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('link', 'not_ours', 'assign', 'note')),
    outcome       text        NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    detail        text        NOT NULL,
    note          text,
    entered_by    text        NOT NULL,
    entered_at    timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, action_id)
);
CREATE INDEX IF NOT EXISTS work_item_actions_by_item ON matching.work_item_actions (tenant_id, adjustment_id);
