"""The notification stage (wiring only): upstream facts → notifications → channels, plus a daily timer.

Offsets, receivable changes, interest and alerts are turned into notifications, each published once on the
notifications topic — the backbone downstream systems subscribe to. A second agent consumes that topic and
queues each notification for the destinations its tenant's routes name (channel plugins); the dispatcher sends
them and logs every attempt. The timer queues deadline reminders and daily digests through the outbox. A third
agent records the digests of the patient control numbers of each account (claims, overpayments) so the
outbound scrubber (``shared.phi``) can mask them. Logic: ``engine``, ``domain`` (pure), ``store`` (SQL),
``delivery`` (attempt loop).
"""

import hashlib
from collections.abc import Mapping
from typing import Any

from mode.types.signals import BaseSignalT

from contracts.references import ReferenceLayout
from contracts.topics import (
    ALERTS,
    CLAIM_PAYMENTS,
    INTEREST,
    NOTIFICATIONS,
    OFFSETS,
    OVERPAYMENTS,
    RECEIVABLES,
)
from policies import config as policy_config
from policies.config import PolicyResolver
from services.notification import delivery, metrics
from services.notification.channels import NotificationChannel
from services.notification.engine import Notifier, load_routes
from services.notification.store import NotificationStore
from services.notification.timelines import policy_timelines
from shared import clock, outbox, plugins
from shared.messages import Incoming, Rejected, envelope_event_id
from shared.settings import Settings, get_settings
from shared.stream import Stage


def build(
    settings: Settings,
    policies: PolicyResolver[Any],
    store: NotificationStore,
    channels: Mapping[str, NotificationChannel],
) -> Stage:
    """The notification stage over these settings, payer policies (reference layouts and timelines),
    repository and configured channel plugins."""
    stage = Stage("notification", settings)

    def layout_of(tenant: str, payer: str) -> ReferenceLayout | None:
        """The payer's reference layout, as detection and matching read it; None (quote conservatively) when
        its policy cannot be resolved."""
        try:
            return policies.reference_layout(tenant, payer)
        except policy_config.PolicyConfigError:
            return None

    notifier = Notifier(
        settings=settings,
        routes=load_routes(settings, list(channels)),
        channels=channels,
        timeline_of=policy_timelines(policies.plugins),
        pool_of=stage.pool,
        today=lambda: clock.today(settings),
        store=store,
        layout_of=layout_of,
    )
    stage.handle(OFFSETS, notifier.on_offset)
    stage.handle(RECEIVABLES, notifier.on_receivable)
    stage.handle(INTEREST, notifier.on_interest)
    stage.handle(ALERTS, notifier.on_alert)
    stage.consume(OFFSETS, RECEIVABLES, INTEREST, ALERTS)
    stage.handle_records(CLAIM_PAYMENTS, notifier.learn_claim)
    stage.handle_records(OVERPAYMENTS, notifier.learn_overpayment)
    stage.consume(CLAIM_PAYMENTS, OVERPAYMENTS, id_of=learn_id)
    stage.handle_records(NOTIFICATIONS, notifier.deliver)
    stage.consume(NOTIFICATIONS, batch=20)
    outbox.every(
        stage,
        settings.notification_tick_seconds,
        notifier.tick,
        "notification tick",
        ticks=metrics.TICKS,
        last_tick=metrics.LAST_TICK,
    )
    # ``deliver`` only queues; the dispatcher sends each destination's queue concurrently with the others.
    dispatcher = delivery.dispatcher_for(stage, channels, notifier.retry_policy, store)
    stage.every(settings.notification_dispatch_seconds, dispatcher.poll, "notification dispatch")

    async def close_channels(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        """Release the channels' HTTP sessions when the worker stops (after its consumer has stopped)."""
        await notifier.close()

    stage.app.on_before_shutdown.connect(close_channels)
    return stage


def learn_id(incoming: Incoming) -> str:
    """The learning agent's own idempotency ids: it reads other stages' topics, so an event id it records must
    never make this stage's other agents take their own input with the same id for done. Input without an
    event id is not this agent's to dead-letter (its consumers do): it gets the digest of its bytes."""
    try:
        return f"learn:{envelope_event_id(incoming)}"
    except Rejected:
        return f"learn:sha256:{hashlib.sha256(incoming.value).hexdigest()}"


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies and the policy
    configuration, the installed channel plugins configured from the settings."""
    settings = settings or get_settings()
    channels: dict[str, NotificationChannel] = plugins.load_plugins(plugins.NOTIFICATION_CHANNELS)
    for channel in channels.values():
        channel.configure(settings)
    return build(settings, policy_config.resolver(settings), NotificationStore(), channels)
