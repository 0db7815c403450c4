-- One overpayment, one receivable (DESIGN.md invariant 6). Detection alone decides which receivable a piece of
-- evidence belongs to, per account, through the identifiers the evidence names: the reference the payer cited
-- (FCN, the reversed claim's or the correction's CLP07, a letter's FCN) and the payer claim numbers involved.
-- Evidence naming an identifier of an existing receivable joins it; evidence that links two receivables opened
-- before the link was known merges them: the absorbed one records which receivable it now lives in.
CREATE TABLE detection.receivable_aliases (
    tenant_id     text NOT NULL,
    account_key   text NOT NULL,
    key           text NOT NULL,
    receivable_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, account_key, key, receivable_id)
);
CREATE INDEX receivable_aliases_by_receivable ON detection.receivable_aliases (tenant_id, receivable_id);

INSERT INTO detection.receivable_aliases (tenant_id, account_key, key, receivable_id)
SELECT e.tenant_id, r.account_key, k.key, e.receivable_id
FROM detection.evidence e
JOIN detection.receivables r USING (tenant_id, receivable_id)
CROSS JOIN LATERAL unnest(array_append(e.claim_references, e.reference)) AS k(key)
WHERE k.key IS NOT NULL
ON CONFLICT DO NOTHING;

ALTER TABLE detection.receivables ADD COLUMN merged_into uuid;
ALTER TABLE matching.receivables ADD COLUMN merged_into uuid;
ALTER TABLE matching.receivables ADD COLUMN merged_on date;

-- A 72 + WO refund pair whose receivable is not known yet is a refund acknowledged for an unknown receivable,
-- not money to identify: it waits here (never in the work queue) and is applied as a refund when the
-- receivable appears.
ALTER TABLE matching.adjustments ADD COLUMN awaiting_refund numeric(14,2) NOT NULL DEFAULT 0
    CHECK (awaiting_refund >= 0);

-- A staff action (refund check, appeal, write-off) can reach matching before the receivable it names does:
-- staff actions and overpayments travel on different topics. It waits here and is applied, in business-date
-- order, when a receivable known by its reference appears, instead of being dead-lettered.
CREATE TABLE matching.pending_actions (
    tenant_id    text        NOT NULL,
    action_id    uuid        NOT NULL,
    account_key  text        NOT NULL,
    payer_id     text        NOT NULL,
    reference    text        NOT NULL,
    effective_date date      NOT NULL,
    envelope     bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, action_id)
);
CREATE INDEX pending_actions_by_reference ON matching.pending_actions (tenant_id, payer_id, reference);

-- A receivable closed by writing off its whole open balance (staff, or an appeal the provider won) stays closed:
-- interest charged later for periods due by that date is written off with it (the tick may post it after the
-- write-off was entered).
ALTER TABLE matching.receivables ADD COLUMN written_off_in_full date;

-- A refund check larger than what matching knew was owed on its date (interest due by then not charged yet):
-- the rest is kept as the check's credit and pays that interest when it is charged, as it would in order.
CREATE TABLE matching.refund_credits (
    tenant_id      text          NOT NULL,
    action_id      uuid          NOT NULL,
    receivable_id  uuid          NOT NULL,
    effective_date date          NOT NULL,
    amount         numeric(14,2) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (tenant_id, action_id)
);
