"""Consumer lag per input topic/partition, measured from the broker: ``remit_consumer_lag_messages``.

Lag = log end offset − the offset the stage's consumer group has committed (the log start offset when it has
committed nothing yet), the definition of ``kafka-consumer-groups --describe`` and of ``Pipeline.settle``.

Why ask the broker (one OffsetFetch for the group, one ListOffsets for the ends, every few seconds) rather than
read the faust consumer's in-memory highwater and committed offsets (which faust's own sensor already exports as
``faust_<service>_topic_partition_end_offset``): the consumer only learns a new highwater when its fetcher
receives records, and faust pauses fetching when a stream's buffer is full. A wedged handler — exactly what a
"lag growing" alert must catch — therefore freezes the in-process lag at its last value, while the broker keeps
counting. The broker's view also survives rebalances: it does not depend on which worker holds a partition.

Lag belongs to the consumer group, not to one worker, so every worker of a stage reports every partition of the
stage's input topics; dashboards and alerts aggregate with ``max by (service, topic, partition)``.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared import telemetry

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0
"""How often lag is measured: well under the 1-minute resolution the alerts look at, two tiny requests each."""


async def partition_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group_id: str, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """Messages each partition of ``topics`` holds beyond what ``group_id`` has committed."""
    described = await admin.describe_topics(list(topics))
    tps = [
        TopicPartition(t["topic"], int(p["partition"]))
        for t in described
        if t.get("error_code") == 0
        for p in t["partitions"]
    ]
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    committed = await admin.list_consumer_group_offsets(group_id, partitions=tps)
    lag: dict[TopicPartition, int] = {}
    for tp in tps:
        meta = committed.get(tp)
        position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        lag[tp] = max(ends[tp] - position, 0)
    return lag


class LagMonitor:
    """Periodically measures the group's lag and mirrors it into the gauge (stale partitions removed)."""

    def __init__(
        self,
        service: str,
        group_id: str,
        bootstrap: str,
        topics: Callable[[], Sequence[str]],
        interval: float = INTERVAL_SECONDS,
        security: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        """``security`` gives the clients' security options (``shared.kafka_security.security_kwargs``); it is
        called when the monitor connects, so a missing login stops the worker's consumer first, by name."""
        self.service = service
        self.group_id = group_id
        self.bootstrap = bootstrap
        self.security = security
        self.topics = topics
        self.interval = interval
        self._reported: set[tuple[str, str]] = set()

    def publish(self, lag: dict[TopicPartition, int]) -> None:
        """Set one gauge child per partition and drop children of partitions no longer consumed."""
        current = {(tp.topic, str(tp.partition)): value for tp, value in lag.items()}
        for topic, partition in self._reported - current.keys():
            with contextlib.suppress(KeyError):
                telemetry.CONSUMER_LAG.remove(self.service, topic, partition)
        for (topic, partition), value in current.items():
            telemetry.CONSUMER_LAG.labels(self.service, topic, partition).set(value)
        self._reported = set(current)

    async def run(self) -> None:
        """Measure forever (a faust app task); broker errors skip a round, the clients are rebuilt."""
        while True:
            admin: AIOKafkaAdminClient | None = None
            consumer: AIOKafkaConsumer | None = None
            try:
                security = dict(self.security())
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **security)
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, enable_auto_commit=False, **security
                )
                await admin.start()
                await consumer.start()
                while True:
                    topics = self.topics()
                    if topics:
                        self.publish(await partition_lag(admin, consumer, self.group_id, topics))
                    await asyncio.sleep(self.interval)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("%s: consumer lag not measured (%s); retrying", self.service, type(exc).__name__)
            except Exception:
                log.exception("%s: consumer lag monitor failed; restarting it", self.service)
            finally:
                if consumer is not None:
                    await consumer.stop()
                if admin is not None:
                    await admin.close()
            await asyncio.sleep(self.interval)
