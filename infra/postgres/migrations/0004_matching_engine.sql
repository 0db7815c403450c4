-- Matching engine (issue 5): refunds, write-offs and appeal pauses on receivables; alias keys for reference
-- fall-backs (ICN, patient control number, trace number); allocation kinds; a per-receivable history.

ALTER TABLE matching.receivables
    ADD COLUMN refunded    numeric(14,2) NOT NULL DEFAULT 0,
    ADD COLUMN written_off numeric(14,2) NOT NULL DEFAULT 0,
    ADD COLUMN paused      boolean       NOT NULL DEFAULT false;
ALTER TABLE matching.receivables DROP CONSTRAINT IF EXISTS receivables_check;
ALTER TABLE matching.receivables ADD CONSTRAINT receivable_balance_not_negative
    CHECK (principal + interest_accrued - principal_recovered - interest_recovered - written_off >= 0);

-- Every key a PLB reference may use to name a receivable.
CREATE TABLE matching.receivable_keys (
    tenant_id     text NOT NULL,
    account_key   text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('reference', 'icn', 'pcn', 'trace')),
    key           text NOT NULL,
    receivable_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, account_key, kind, key, receivable_id)
);

ALTER TABLE matching.allocations ADD COLUMN kind text NOT NULL DEFAULT 'offset'
    CHECK (kind IN ('offset', 'refund'));

ALTER TABLE matching.adjustments
    ADD COLUMN match_keys  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN match_method text,
    ADD COLUMN suggestion  text;
CREATE INDEX adjustments_by_remittance ON matching.adjustments (tenant_id, remittance_id);
CREATE INDEX adjustments_by_trace ON matching.adjustments (tenant_id, trace_number);

-- What happened to each receivable, in order, with the document line behind it (staff timeline).
CREATE TABLE matching.receivable_history (
    seq           bigserial     PRIMARY KEY,
    tenant_id     text          NOT NULL,
    receivable_id uuid          NOT NULL,
    event_id      uuid          NOT NULL,
    change        text          NOT NULL,
    amount        numeric(14,2) NOT NULL,
    effective_date date         NOT NULL,
    source        text          NOT NULL,
    status        text          NOT NULL,
    balance       numeric(14,2) NOT NULL,
    UNIQUE (tenant_id, event_id)
);
CREATE INDEX history_by_receivable ON matching.receivable_history (tenant_id, receivable_id, seq);
