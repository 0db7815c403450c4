"""The notification stage: turn offsets, receivable changes and interest into messages, and deliver them.

Two agents: one writes notifications and publishes them on ``remit.notifications.v1`` (the outbound feed
downstream systems subscribe to); the other consumes that topic and delivers each notification to the
configured channels, logging every attempt. The notification id is the receiver's idempotency key.
"""

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import InterestAccrued, NotificationEmitted, OffsetRecorded, ReceivableChanged
from services.notification import domain, metrics, store
from services.notification.channels import WebhookChannel
from shared import envelopes, plugins
from shared.ids import stable_id
from shared.stream import Incoming, Outgoing, Stage, dead_letter_message

stage = Stage("notification")
app = stage.app
CHANNELS: dict[str, WebhookChannel] = plugins.load_plugins(plugins.NOTIFICATION_CHANNELS)
NOTIFICATIONS = "remit.notifications.v1"


def _messages(incoming: Incoming) -> tuple[Envelope[Any], list[domain.Message]]:
    event_type = json.loads(incoming.value).get("event_type", "")
    if incoming.topic == "remit.receivables.v1":
        change = parse_envelope(incoming.value, ReceivableChanged)
        return change, domain.for_receivable(event_type, change.payload)
    if incoming.topic == "remit.offsets.v1":
        offset = parse_envelope(incoming.value, OffsetRecorded)
        return offset, domain.for_offset(event_type, offset.payload)
    accrual = parse_envelope(incoming.value, InterestAccrued)
    return accrual, domain.for_interest(accrual.payload)


async def notify(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Create the notifications an upstream event calls for and publish them."""
    source, messages = _messages(incoming)
    outputs = []
    for message in messages:
        payload = NotificationEmitted(
            notification_id=stable_id(source.event_id, "notification", message.kind),
            kind=message.kind,
            severity=message.severity,
            summary=message.summary,
            facts=message.facts,
            related_event_id=source.event_id,
        )
        if await store.add_notification(conn, source.tenant_id, payload):
            metrics.NOTIFICATIONS.labels(message.kind).inc()
            outputs.append(
                Outgoing.event(
                    NOTIFICATIONS,
                    envelopes.build(
                        payload,
                        event_id=payload.notification_id,
                        event_type="NotificationEmitted",
                        tenant_id=source.tenant_id,
                        account_key=source.account_key,
                        causation_id=str(source.event_id),
                    ),
                )
            )
    return outputs


async def deliver(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Deliver one notification to the webhook (once per id); dead-letter it when the channel gives up."""
    env = parse_envelope(incoming.value, NotificationEmitted)
    settings = stage.settings
    channel = CHANNELS.get("webhook")
    if settings.webhook_url is None or channel is None:
        return []
    nid = env.payload.notification_id
    if await store.delivered(conn, env.tenant_id, nid, channel.name):
        metrics.DELIVERIES.labels(channel.name, "duplicate_skipped").inc()
        return []
    attempts = await channel.deliver(
        settings.webhook_url, settings.webhook_secret, str(nid), incoming.value, settings.webhook_max_attempts
    )
    for attempt in attempts:
        metrics.DELIVERY_SECONDS.labels(channel.name).observe(attempt.latency_ms / 1000)
    await store.log_attempts(conn, env.tenant_id, nid, channel.name, attempts)
    outcome = attempts[-1].status if attempts else "failed"
    metrics.DELIVERIES.labels(channel.name, outcome).inc()
    if outcome != "delivered":
        return [
            dead_letter_message(
                stage.service,
                incoming,
                "delivery_gave_up",
                f"webhook gave up after {len(attempts)} attempts",
                {"notification_id": str(nid)},
            )
        ]
    return []


stage.consume(["remit.offsets.v1", "remit.receivables.v1", "remit.interest.v1"], notify)
stage.consume([NOTIFICATIONS], deliver)
