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
