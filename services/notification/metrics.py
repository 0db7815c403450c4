"""Every metric object of the notification stage. Labels are kinds, channels and outcomes — never targets,
tenants or identifiers, so no label can carry PHI or grow without bound."""

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter("remit_notifications_total", "Notifications created, by kind.", ["kind"])
DELIVERIES = Counter(
    "remit_notification_deliveries_total",
    "Delivery outcomes per destination attempt (delivered, failed, already_delivered, gave_up), by channel.",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "remit_notification_delivery_duration_seconds", "Latency of a delivery attempt.", ["channel"]
)
DIGESTS = Counter("remit_notification_digests_total", "Daily digests composed (one per tenant and day).")
TICKS = Counter("remit_notification_ticks_total", "Runs of the deadline/digest timer.")
LAST_TICK = Gauge("remit_notification_last_tick_timestamp_seconds", "When the timer last completed.")
DELIVERY_SCANS = Counter(
    "remit_notification_delivery_scans_total",
    "Notifications queued for delivery, by whether their text was scanned for PHI tokens again (scanned) or "
    "not, the account having learnt nothing since the emission scan found it clean (skipped).",
    ["outcome"],
)
