"""The notification stage (wiring only): upstream facts → notifications → channels, plus a daily timer.

Offsets, receivable changes, interest and alerts are turned into notifications, each published once on the
notifications topic — the backbone downstream systems subscribe to. A second agent consumes that topic and
queues each notification for the destinations its tenant's routes name (channel plugins); the dispatcher sends
them and logs every attempt. The timer queues deadline reminders and daily digests through the outbox. A third
agent records the digests of the patient control numbers of each account (intake's patient tokens events,
overpayments) so the outbound scrubber (``shared.phi``) can mask them (``learn``). Every consumer is a batch
handler: a constant number of statements per batch (issue #18.2). Logic: ``engine``, ``domain`` (pure),
``store`` (SQL), ``delivery`` (attempt loop).
"""

from collections.abc import Mapping
from typing import Any

from mode.types.signals import BaseSignalT

from contracts.references import ReferenceLayout
from contracts.topics import ALERTS, INTEREST, NOTIFICATIONS, OFFSETS, RECEIVABLES
from policies import config as policy_config
from policies.config import PolicyResolver
from services.notification import delivery, learn, metrics
from services.notification.channels import NotificationChannel
from services.notification.engine import Notifier, load_routes
from services.notification.store import NotificationStore
from services.notification.timelines import policy_timelines
from shared import clock, outbox, phi, plugins
from shared.messages import BatchHandler
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
    phi.configure_key(settings.phi_key)  # learnt digests are keyed; unkeyed look-ups would mask nothing
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
    # One handler for the four: their records alternate in a batch (matching publishes an offset and the
    # receivable change it caused together), and the token scans are per call.
    stage.handle_batches((OFFSETS, RECEIVABLES, INTEREST, ALERTS), notifier.on_upstream)
    stage.consume(OFFSETS, RECEIVABLES, INTEREST, ALERTS)
    learning = learn.learner(store)
    for topic in learn.TOPICS:
        stage.handle_records(topic, learning)
    stage.consume(*learn.TOPICS, id_of=learn.learn_id)
    stage.handle_records(NOTIFICATIONS, BatchHandler(notifier.deliver))
    # ``deliver`` only queues (the dispatcher sends, after the commit), so its batches take the stage's usual
    # size: the cap of 20 dates from when a crash repeated every webhook call of the batch.
    stage.consume(NOTIFICATIONS)
    outbox.every(
        stage,
        settings.notification_tick_seconds,
        notifier.tick,
        "notification tick",
        ticks=metrics.TICKS,
        last_tick=metrics.LAST_TICK,
    )
    # ``deliver`` only queues, and wakes the dispatcher after its commit; the dispatcher sends each
    # destination's queue concurrently with the others. The timer is its safety poll, not its trigger.
    dispatcher = delivery.dispatcher_for(stage, channels, notifier.retry_policy, store)
    notifier.queued = dispatcher.wake
    stage.every(settings.notification_dispatch_seconds, dispatcher.poll, "notification dispatch")

    async def close_channels(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        """Stop the dispatcher's drain tasks, then release the channels' HTTP sessions, when the worker stops
        (after its consumer has stopped). In that order: a drain task still running on closed sessions would
        count each refused request as a failed attempt and could give a healthy destination's job up."""
        await dispatcher.stop()
        await notifier.close()

    stage.app.on_before_shutdown.connect(close_channels)
    return stage


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies and the policy
    configuration, the installed channel plugins configured from the settings."""
    settings = settings or get_settings()
    channels: dict[str, NotificationChannel] = plugins.load_plugins(plugins.NOTIFICATION_CHANNELS)
    for channel in channels.values():
        channel.configure(settings)
    return build(settings, policy_config.resolver(settings), NotificationStore(), channels)
