"""Delivering one notification to one destination at most once per success, with every attempt logged.

The sequence per destination is: (1) look in the delivery log — already delivered means done, whatever
replay or restart brought the notification back; (2) insert the attempt as ``sending`` and COMMIT; (3) make the
attempt; (4) update the row to ``delivered``/``failed`` with code and latency and COMMIT; (5) on a transient
failure wait (exponential back-off with jitter) and go to (2), up to the give-up limit.

Each step is its own autocommit statement on a connection of its own, not part of the consumer's transaction,
so the log is durable the moment an attempt ends rather than when the whole message is done.

Residual window, stated honestly: a crash after the receiver accepted the request (2xx) and before step (4)
commits leaves a ``sending`` row, and the restarted worker sends again — at-least-once. The receiver dedupes on
the ``X-Offsetstream-Delivery`` id (e-mail: ``Message-ID``); only it can close that window. Its length is the
response's trip back plus one single-row UPDATE commit (milliseconds); a ``sending`` row is the log's record
that a resend may have been a duplicate.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.notification import domain, metrics, store
from services.notification.channels import NotificationChannel, Outbound, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Give-up limit and back-off of one destination's attempts."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0


async def deliver_once(
    conn: asyncpg.Connection,
    channel: NotificationChannel,
    outbound: Outbound,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> str:
    """Deliver to one destination; returns ``delivered``, ``already_delivered`` or ``gave_up``."""
    nid, tenant = UUID(outbound.notification_id), outbound.tenant_id
    name, target = channel.name, outbound.target
    if await store.delivered(conn, tenant, nid, name, target):
        metrics.DELIVERIES.labels(name, "already_delivered").inc()
        return "already_delivered"
    for number in range(1, policy.max_attempts + 1):
        row_id, _ = await store.begin_attempt(conn, tenant, nid, name, target)
        started = time.perf_counter()
        try:
            outcome = await channel.send(outbound)
        except Exception as exc:  # a plugin that raises is isolated: a failed attempt, then the DLT
            log.warning("channel %s raised %s for notification %s", name, type(exc).__name__, nid)
            outcome = Outcome("retry", None, f"plugin raised {type(exc).__name__}")
        latency_ms = (time.perf_counter() - started) * 1000
        metrics.DELIVERY_SECONDS.labels(name).observe(latency_ms / 1000)
        ok = outcome.status == "delivered"
        logged = await store.finish_attempt(
            conn, row_id, "delivered" if ok else "failed", outcome.code, latency_ms, outcome.error
        )
        if ok:
            metrics.DELIVERIES.labels(name, "delivered" if logged else "already_delivered").inc()
            return "delivered"
        metrics.DELIVERIES.labels(name, "failed").inc()
        if outcome.status == "rejected":
            break
        if number < policy.max_attempts:
            await sleep(domain.backoff_delay(number, policy.base_delay, policy.max_delay, rng))
    metrics.DELIVERIES.labels(name, "gave_up").inc()
    return "gave_up"
