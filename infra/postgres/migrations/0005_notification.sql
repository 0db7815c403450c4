-- Notification: per-destination delivery log with a claim row, the stage's own copy of receivables and their
-- deadlines, the offset/receivable join behind "offset applied", and daily digests. Notification schema only.

-- The delivery log: one row per attempt, inserted as 'sending' and committed BEFORE the request leaves, then
-- finished as 'delivered' or 'failed'. A row still 'sending' after a crash marks the one in-doubt window.
ALTER TABLE notification.deliveries ADD COLUMN target text NOT NULL DEFAULT '';
ALTER TABLE notification.deliveries ADD COLUMN finished_at timestamptz;
ALTER TABLE notification.deliveries ALTER COLUMN latency_ms DROP NOT NULL;
ALTER TABLE notification.deliveries
    ADD CONSTRAINT deliveries_status CHECK (status IN ('sending', 'delivered', 'failed'));
-- Exactly one delivered attempt per notification and destination, whatever restarts and replays do.
CREATE UNIQUE INDEX deliveries_delivered_once
    ON notification.deliveries (tenant_id, notification_id, channel, target) WHERE status = 'delivered';
CREATE INDEX deliveries_by_destination
    ON notification.deliveries (tenant_id, notification_id, channel, target);

-- The stage's copy of receivables (fed by remit.receivables.v1) that the deadline timer scans.
CREATE TABLE notification.receivables (
    tenant_id          text          NOT NULL,
    receivable_id      uuid          NOT NULL,
    account_key        text          NOT NULL,
    payer_id           text          NOT NULL,
    reference          text          NOT NULL,
    policy             text          NOT NULL,
    status             text          NOT NULL,
    determination_date date          NOT NULL,
    balance            numeric(14,2) NOT NULL,
    paused             boolean       NOT NULL,
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, receivable_id)
);

-- Milestones of each receivable (from its payer policy's timeline); notified once per receivable + deadline.
CREATE TABLE notification.deadlines (
    tenant_id       text        NOT NULL,
    receivable_id   uuid        NOT NULL,
    milestone       text        NOT NULL,
    due_on          date        NOT NULL,
    notification_id uuid,
    PRIMARY KEY (tenant_id, receivable_id, milestone, due_on)
);
CREATE INDEX deadlines_pending ON notification.deadlines (due_on) WHERE notification_id IS NULL;

-- "Offset applied" needs both the allocation (remit.offsets.v1) and the balance left after it
-- (remit.receivables.v1, causation_id = offset id); they arrive in either order, whichever is second notifies.
CREATE TABLE notification.offset_applications (
    tenant_id      text          NOT NULL,
    offset_id      uuid          NOT NULL,
    receivable_id  uuid          NOT NULL,
    account_key    text,
    reference      text,
    trace_number   text,
    payment_date   date,
    reason_code    text,
    applied        numeric(14,2),
    to_interest    numeric(14,2),
    to_principal   numeric(14,2),
    balance_after  numeric(14,2),
    status_after   text,
    notified       boolean       NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, offset_id, receivable_id)
);

-- Notifications routed to a digest, by tenant and business day; a digest is composed once per tenant and day.
CREATE TABLE notification.digest_items (
    tenant_id       text        NOT NULL,
    digest_day      date        NOT NULL,
    notification_id uuid        NOT NULL,
    kind            text        NOT NULL,
    severity        text        NOT NULL,
    summary         text        NOT NULL,
    PRIMARY KEY (tenant_id, digest_day, notification_id)
);

CREATE TABLE notification.digests (
    tenant_id       text        NOT NULL,
    digest_day      date        NOT NULL,
    notification_id uuid        NOT NULL,
    item_count      integer     NOT NULL,
    composed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, digest_day)
);
