-- Deliveries owed, one row per notification and immediate destination (issue 16: a slow receiver delays only
-- its own tenant). The consumer queues them in its own transaction, with the notification's claim, and goes on;
-- the dispatcher (services/notification/delivery.py) sends each destination's queue on its own, one row at a
-- time in order, under a lease, and deletes the row once delivered or dead-lettered. A crash leaves the row:
-- the restarted worker sends it again after the delivery log's check (at-least-once, deduped by delivery id).
CREATE TABLE notification.delivery_queue (
    job_id           bigserial   PRIMARY KEY,
    tenant_id        text        NOT NULL,
    notification_id  uuid        NOT NULL,
    channel          text        NOT NULL,
    target           text        NOT NULL,
    body             bytea       NOT NULL,  -- what is sent: the backbone envelope after the outbound scrubber
    subject          text        NOT NULL,
    text             text        NOT NULL,
    source_topic     text        NOT NULL,  -- where the notification was consumed, named by its dead letter
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    source_key       bytea,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    leased_by        text,
    leased_until     timestamptz,
    UNIQUE (tenant_id, notification_id, channel, target)
);
CREATE INDEX delivery_queue_by_destination ON notification.delivery_queue (channel, target, job_id);
