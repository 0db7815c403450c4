"""Broker administration every stage and tool shares: the message cap, topic creation with their configs, topic
partitions, and consumer lag per stage. No domain knowledge: topics come from the contracts registry."""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import NOTIFICATIONS, TOPICS, all_topic_names
from shared import kafka_security
from shared.lag import partition_lag
from shared.settings import SERVICES, Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def topic_configs(name: str, settings: Settings) -> dict[str, str]:
    """Kafka configs a topic is created with: the message cap on every topic, ``min.insync.replicas`` when
    ``settings.kafka_min_insync_replicas`` is set (a cluster: 2 of 3 replicas), and on dead-letter topics a
    retention (``settings.dlt_retention_days``, 30 by default). A dead letter is for staff to look at and
    replay within weeks, not a second archive: intake's records name the payer file kept in
    ``intake.raw_files`` and no longer grow with it, and other stages' hold one small event each."""
    configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    if settings.kafka_min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
    if name.endswith(".dlt"):
        days = settings.dlt_retention_days
        configs["retention.ms"] = "-1" if days < 0 else str(int(days * 24 * 3600 * 1000))
    return configs


async def create_topics(settings: Settings) -> list[str]:
    """Create every topic that is missing, with explicit partition counts and ``settings.kafka_replication_factor``
    replicas; return the ones created. Existing
    dead-letter topics get their retention set to the configured one (see :func:`topic_configs`)."""
    admin = AIOKafkaAdminClient(**kafka_security.client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        partitions = {
            t.name: settings.topic_partitions if t.partitions == 3 else t.partitions for t in TOPICS
        }
        wanted = [
            NewTopic(
                name,
                num_partitions=partitions.get(name, settings.topic_partitions),
                replication_factor=settings.kafka_replication_factor,
                topic_configs=topic_configs(name, settings),
            )
            for name in all_topic_names()
            if name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        # AlterConfigs replaces a topic's whole dynamic config, so the cap is sent again with the retention.
        altered = [
            ConfigResource(ConfigResourceType.TOPIC, name, configs=topic_configs(name, settings))
            for name in all_topic_names()
            if name in existing and name.endswith(".dlt")
        ]
        if altered:
            await admin.alter_configs(altered)
        await wait_for_leaders(admin, all_topic_names())
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], patience: float = 30.0) -> None:
    """Return once every partition of ``topics`` has a leader, as the broker answering reports it.

    A topic is usable a moment after ``CreateTopics`` returns: until its partitions have elected leaders,
    the first produce requests fail with ``NotLeaderForPartitionError`` and are retried with a warning in
    every service's log. Waiting here, before anything publishes, keeps those warnings (which look like
    faults to an operator) out of a normal start. Gives up with a warning after ``patience`` seconds: producers still retry.
    """
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        described = await admin.describe_topics(topics)
        leaderless = [
            t["topic"]
            for t in described
            if t.get("error_code") != 0
            or not t["partitions"]
            or any(p.get("error_code") != 0 or p.get("leader", -1) < 0 for p in t["partitions"])
        ]
        if not leaderless and len(described) == len(topics):
            return
        if asyncio.get_running_loop().time() > deadline:
            log.warning("topics without a partition leader after %.0f s: %s", patience, ", ".join(leaderless))
            return
        await asyncio.sleep(0.2)


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, list[int]]:
    """Partition ids per topic, asked of the admin client (a consumer without a group or subscription never
    loads topic metadata, so its ``partitions_for_topic`` stays empty)."""
    described = await admin.describe_topics(topics)
    return {
        t["topic"]: sorted(int(p["partition"]) for p in t["partitions"])
        for t in described
        if t.get("error_code") == 0
    }


async def consumer_lag(settings: Settings) -> dict[str, int]:
    """Messages not yet committed by each stage's consumer group, over the topics it consumes (the same
    measure the services export as ``remit_consumer_lag_messages``)."""
    admin = AIOKafkaAdminClient(**kafka_security.client_kwargs(settings))
    consumer = AIOKafkaConsumer(**kafka_security.client_kwargs(settings), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        for service in SERVICES:
            topics = [t.name for t in TOPICS if service in t.consumers]
            if service == "notification":
                topics.append(NOTIFICATIONS.name)
            per_partition = await partition_lag(admin, consumer, f"offsetstream-{service}", topics)
            lag[service] = sum(per_partition.values())
        return lag
    finally:
        await consumer.stop()
        await admin.close()
