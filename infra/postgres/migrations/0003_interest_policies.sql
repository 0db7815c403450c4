-- Interest: payer policies, exact recomputation of back-dated changes, timelines, recoupment alerts, ERS.
-- Touches only the interest schema.

-- Every ReceivableChanged as received, with matching's running totals: recoveries are re-dated from their
-- consecutive differences and appeal pauses read from statuses, so a late or back-dated change recomputes.
ALTER TABLE interest.principal_history
    ADD COLUMN event_type          text          NOT NULL DEFAULT 'ReceivableChanged',
    ADD COLUMN status              text          NOT NULL DEFAULT 'open',
    ADD COLUMN change_amount       numeric(14,2) NOT NULL DEFAULT 0,
    ADD COLUMN principal           numeric(14,2),
    ADD COLUMN principal_recovered numeric(14,2),
    ADD COLUMN interest_recovered  numeric(14,2) NOT NULL DEFAULT 0;
UPDATE interest.principal_history h
   SET principal = r.principal, principal_recovered = r.principal - h.outstanding
  FROM interest.receivables r
 WHERE r.tenant_id = h.tenant_id AND r.receivable_id = h.receivable_id;
ALTER TABLE interest.principal_history
    ALTER COLUMN principal SET NOT NULL,
    ALTER COLUMN principal_recovered SET NOT NULL;
CREATE INDEX principal_history_by_receivable ON interest.principal_history (tenant_id, receivable_id, seq);

-- How far each receivable has been accrued, when the tick must look at it next, and the policy applied.
-- paid_on / duplicate feed the state look-back and notice rules once an event carries them.
ALTER TABLE interest.receivables
    ADD COLUMN policy_applied  text,
    ADD COLUMN accrued_through date,
    ADD COLUMN next_due        date,
    ADD COLUMN paid_on         date,
    ADD COLUMN duplicate       boolean NOT NULL DEFAULT false;
UPDATE interest.receivables SET next_due = determination_date + 1 WHERE principal > principal_recovered;
CREATE INDEX receivables_next_due ON interest.receivables (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX receivables_by_reference ON interest.receivables (tenant_id, reference);

-- A period's ledger total is the sum of its versions: version 1 is the charge, later versions correct it.
-- Timer-produced events now travel through ops.outbox, so the per-row `published` flag goes.
ALTER TABLE interest.accruals ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE interest.accruals ADD COLUMN due_date date;
UPDATE interest.accruals SET due_date = period_end + 1;
ALTER TABLE interest.accruals ALTER COLUMN due_date SET NOT NULL;
ALTER TABLE interest.accruals ADD COLUMN cause text NOT NULL DEFAULT '';
ALTER TABLE interest.accruals ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE interest.accruals DROP CONSTRAINT accruals_pkey;
ALTER TABLE interest.accruals ADD PRIMARY KEY (tenant_id, receivable_id, period_number, version);
ALTER TABLE interest.accruals DROP COLUMN published;

-- The receivable's milestones under its policy (rewritten on every recomputation).
CREATE TABLE interest.timelines (
    tenant_id     text    NOT NULL,
    receivable_id uuid    NOT NULL,
    ordinal       integer NOT NULL,
    label         text    NOT NULL,
    day           date    NOT NULL,
    PRIMARY KEY (tenant_id, receivable_id, ordinal)
);

-- Extended repayment schedules granted by the payer: [[due date, amount], ...].
CREATE TABLE interest.repayment_plans (
    tenant_id     text        NOT NULL,
    receivable_id uuid        NOT NULL,
    granted_on    date        NOT NULL,
    installments  jsonb       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, receivable_id)
);

-- Recoupments that broke the payer's rules, raised once per (recoupment, kind).
CREATE TABLE interest.alerts (
    tenant_id     text          NOT NULL,
    alert_id      uuid          NOT NULL,
    receivable_id uuid          NOT NULL,
    kind          text          NOT NULL,
    rules         text[]        NOT NULL,
    observed_on   date          NOT NULL,
    amount        numeric(14,2) NOT NULL,
    detail        text          NOT NULL,
    source_event  text          NOT NULL,
    raised_at     timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX alerts_by_receivable ON interest.alerts (tenant_id, receivable_id);
