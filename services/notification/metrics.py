"""Every metric object of the notification stage."""

from prometheus_client import Counter, Histogram

NOTIFICATIONS = Counter("remit_notifications_total", "Notifications created, by kind.", ["kind"])
DELIVERIES = Counter(
    "remit_notification_deliveries_total", "Delivery outcomes, by channel.", ["channel", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "remit_notification_delivery_duration_seconds", "Latency of a delivery attempt.", ["channel"]
)
