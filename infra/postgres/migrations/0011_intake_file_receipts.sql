-- Every receipt of a raw file: one row per message on remit.intake.v1 (its Kafka position), so an identical
-- re-feed, which its event id turns into a replay before any handler runs, is still recorded and
-- `offsetstream files` can say the file came again and posted nothing. A redelivery of the same message has
-- the same position and adds nothing. kind: received (first parse), replayed (re-driven from the DLT),
-- copy (identical bytes again, nothing parsed anew).
-- The key holds the tenant and the file as well as the position: a position names a message only while its
-- topic lives, so a topic recreated after a disaster (offsets from 0 again) must not make new receipts collide
-- with old ones and vanish. A redelivery still has the same tenant, bytes and position.
CREATE TABLE IF NOT EXISTS intake.file_receipts (
    tenant_id   text        NOT NULL,
    sha256      text        NOT NULL,
    source      text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('received', 'replayed', 'copy')),
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256, topic, "partition", "offset")
);

-- What the reader noticed but did not refuse in a posted transaction (segments kept but not interpreted,
-- segments out of place, a missing PER*BL, stray segments between transactions): segment ids, ordinals and
-- codes only, never element values. `offsetstream files` counts them and shows them with --warnings.
ALTER TABLE intake.remittances ADD COLUMN IF NOT EXISTS warnings text[] NOT NULL DEFAULT '{}';

-- A payment re-sent under new control numbers (a clearinghouse re-enveloping a file) is found by its business
-- key, so it is not posted twice.
CREATE INDEX IF NOT EXISTS remittances_by_payment
    ON intake.remittances (tenant_id, payer_id, payee_id, trace_number, payment_date);
