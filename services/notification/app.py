"""The notification stage (wiring only): upstream facts → notifications → channels, plus a daily timer.

Agent ``notify`` consumes offsets, receivable changes, interest and alerts and publishes each notification once
on ``remit.notifications.v1`` — the backbone downstream systems subscribe to. Agent ``deliver`` consumes that
topic and sends each notification to the destinations its tenant's routes name (channel plugins), logging every
attempt. The timer queues deadline reminders and daily digests through the outbox. Agent ``learn`` records the
digests of the patient control numbers of each account (claims, overpayments) so the outbound scrubber
(``shared.phi``) can mask them. Logic: ``engine``, ``domain`` (pure), ``store`` (SQL), ``delivery`` (attempt
loop).
"""

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from mode.types.signals import BaseSignalT

from contracts.references import ReferenceLayout
from policies import config as policy_config
from services.notification import delivery, metrics
from services.notification.channels import NotificationChannel
from services.notification.engine import NOTIFICATIONS, SOURCES, TOKEN_SOURCES, Notifier, load_routes
from services.notification.timelines import policy_timelines
from shared import clock, outbox, plugins
from shared.stream import Incoming, Outgoing, Rejected, Stage, envelope_event_id

log = logging.getLogger(__name__)

stage = Stage("notification")
app = stage.app
CHANNELS: dict[str, NotificationChannel] = plugins.load_plugins(plugins.NOTIFICATION_CHANNELS)
for _channel in CHANNELS.values():
    _channel.configure(stage.settings)
POLICY = policy_config.resolver(stage.settings)


def layout_of(tenant: str, payer: str) -> ReferenceLayout | None:
    """The payer's reference layout, as detection and matching read it; None (quote conservatively) when its
    policy cannot be resolved."""
    try:
        return POLICY.reference_layout(tenant, payer)
    except policy_config.PolicyConfigError:
        return None


notifier = Notifier(
    settings=stage.settings,
    routes=load_routes(stage.settings, list(CHANNELS)),
    channels=CHANNELS,
    timeline_of=policy_timelines(plugins.load_plugins(plugins.PAYER_POLICIES)),
    pool_of=stage.pool,
    today=lambda: clock.today(stage.settings),
    layout_of=layout_of,
)


async def notify(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Upstream event → notifications on the backbone."""
    return await notifier.notify(conn, incoming)


async def learn(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Claims and overpayments → digests of the patient control numbers notifications must never carry."""
    return await notifier.learn(conn, incoming)


def learn_id(incoming: Incoming) -> str:
    """``learn``'s own idempotency ids: it reads other stages' topics, so an event id it records must never
    make this stage's other agents take their own input with the same id for done. Input without an event id
    is not this agent's to dead-letter (its consumers do): it gets the digest of its bytes."""
    try:
        return f"learn:{envelope_event_id(incoming)}"
    except Rejected:
        return f"learn:sha256:{hashlib.sha256(incoming.value).hexdigest()}"


async def deliver(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Notification → channels."""
    return await notifier.deliver(conn, incoming)


async def tick() -> int:
    """Queue due reminders and digests, then publish whatever the outbox holds."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        await notifier.tick(conn, clock.today(stage.settings))
    published = await outbox.flush_all(stage)
    metrics.TICKS.inc()
    metrics.LAST_TICK.set(time.time())
    return published


async def close_channels(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    """Release the channels' HTTP sessions when the worker stops (after its consumer has stopped)."""
    await notifier.close()


app.on_before_shutdown.connect(close_channels)
stage.every(stage.settings.notification_tick_seconds, tick, "notification tick")
stage.consume(list(SOURCES), notify)
stage.consume(list(TOKEN_SOURCES), learn, learn_id)
stage.consume([NOTIFICATIONS], deliver, batch=20)
# --- delivery hook (issue 16 §3, services/notification/delivery.py) --------------------------------------------
# ``deliver`` only queues; the dispatcher sends each destination's queue concurrently with the others.
dispatcher = delivery.dispatcher_for(stage, CHANNELS, notifier.retry_policy)
stage.every(stage.settings.notification_dispatch_seconds, dispatcher.poll, "notification dispatch")
