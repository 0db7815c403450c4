"""Notification's tables (schema ``notification``): notifications and the delivery log."""

import json
from uuid import UUID

import asyncpg

from contracts.events import NotificationEmitted
from services.notification.channels import Attempt


async def add_notification(conn: asyncpg.Connection, tenant_id: str, n: NotificationEmitted) -> bool:
    """Record a notification once; False on a replay."""
    done = await conn.fetchval(
        """INSERT INTO notification.notifications (tenant_id, notification_id, kind, severity, summary, facts,
               related_event_id) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7) ON CONFLICT DO NOTHING RETURNING 1""",
        tenant_id,
        n.notification_id,
        n.kind,
        n.severity,
        n.summary,
        json.dumps(n.facts),
        n.related_event_id,
    )
    return done is not None


async def delivered(conn: asyncpg.Connection, tenant_id: str, notification_id: UUID, channel: str) -> bool:
    """True when a channel already delivered this notification (exactly one delivery per id)."""
    row = await conn.fetchval(
        """SELECT 1 FROM notification.deliveries WHERE tenant_id = $1 AND notification_id = $2 AND channel = $3
               AND status = 'delivered'""",
        tenant_id,
        notification_id,
        channel,
    )
    return row is not None


async def log_attempts(
    conn: asyncpg.Connection, tenant_id: str, notification_id: UUID, channel: str, attempts: list[Attempt]
) -> None:
    """Every attempt with status and latency, and the notification's resulting status."""
    await conn.executemany(
        """INSERT INTO notification.deliveries (tenant_id, notification_id, channel, attempt, status, http_status,
               latency_ms, error) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)""",
        [
            (
                tenant_id,
                notification_id,
                channel,
                a.attempt,
                a.status,
                a.http_status,
                round(a.latency_ms, 1),
                a.error,
            )
            for a in attempts
        ],
    )
    final = attempts[-1].status if attempts else "failed"
    await conn.execute(
        "UPDATE notification.notifications SET status = $3 WHERE tenant_id = $1 AND notification_id = $2",
        tenant_id,
        notification_id,
        final,
    )
