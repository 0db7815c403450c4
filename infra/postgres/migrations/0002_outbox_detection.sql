-- Transactional outbox for events produced by timers (no input message to hang idempotence on), and the
-- detection additions of issue 4: evidence subjects (merge per subject) and staff-entered letters.

CREATE TABLE ops.outbox (
    service     text        NOT NULL,
    message_id  text        NOT NULL,
    record      jsonb       NOT NULL,
    published   boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, message_id)
);
CREATE INDEX outbox_unpublished ON ops.outbox (service, created_at) WHERE NOT published;

-- What a piece of evidence is about (a claim, a PLB pair, a letter): two rules flagging the same claim
-- describe one overpayment, not two.
ALTER TABLE detection.evidence ADD COLUMN subject text;
UPDATE detection.evidence SET subject = evidence_id::text WHERE subject IS NULL;
ALTER TABLE detection.evidence ALTER COLUMN subject SET NOT NULL;
ALTER TABLE detection.evidence ADD COLUMN reference text;
ALTER TABLE detection.evidence ADD COLUMN claim_references text[] NOT NULL DEFAULT '{}';

-- Reversals seen, and whether a correction has paired them (for "reversal without correction").
CREATE TABLE detection.reversals (
    tenant_id      text          NOT NULL,
    claim_event_id uuid          NOT NULL,
    account_key    text          NOT NULL,
    payer_id       text          NOT NULL,
    icn            text,
    amount         numeric(14,2) NOT NULL,
    reversed_on    date          NOT NULL,
    corrected_by   uuid,
    PRIMARY KEY (tenant_id, claim_event_id)
);
CREATE INDEX reversals_open ON detection.reversals (reversed_on) WHERE corrected_by IS NULL;
