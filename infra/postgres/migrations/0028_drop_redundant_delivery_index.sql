-- notification.deliveries_by_notification (tenant_id, notification_id) is a prefix of
-- deliveries_by_destination (tenant_id, notification_id, channel, target): every look-up it served is served
-- by the longer one, and each delivery attempt (an insert, then the outcome's update, which is never HOT since
-- the table has four indexes) paid to keep both. Found while batching the dispatcher (session 10).
DROP INDEX IF EXISTS notification.deliveries_by_notification;
