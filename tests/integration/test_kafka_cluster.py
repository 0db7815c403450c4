"""A 3-broker KRaft cluster (issue 18 point 5): replication factor 3, ``min.insync.replicas=2``, producers with
``acks=all``. The five services run as processes; a generated feed goes in and, a third of the way through, the
broker leading the raw-file topic's first partition is killed (SIGKILL: no controlled shutdown, no leadership
handed over). The pipeline must go on on two brokers and end with exactly ``expected.json`` and a passing
ledger check; the killed broker then restarts and rejoins every partition's in-sync replicas.

It starts a stack of its own (three JVMs and a PostgreSQL), about two minutes on an idle 2-core machine;
``OFFSETSTREAM_SKIP_CLUSTER=1`` skips it.
"""

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cli import ledger_check, letters
from cli.local_infra import Stack, start_stack
from cli.runner import Pipeline
from contracts.topics import INTAKE, all_topic_names, dlt_name
from devtools.generate import Spec, compare, feed_order, generate
from services.intake import publish
from shared import kafka, kafka_security
from shared.settings import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("OFFSETSTREAM_SKIP_CLUSTER") == "1", reason="OFFSETSTREAM_SKIP_CLUSTER=1"
    ),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    """Three combined KRaft nodes + PostgreSQL, data under .local/cluster-<pid>, stopped by PID."""
    root = REPO_ROOT / ".local" / f"cluster-{os.getpid()}"
    started = start_stack(root, "cluster", durable=False, brokers=3)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(started.postgres.home, ignore_errors=True)
        for data in ("kafka", "postgres", "data"):
            shutil.rmtree(Path(started.root) / data, ignore_errors=True)


@pytest.fixture
async def admin(cluster: Stack) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**kafka_security.client_kwargs(cluster.settings("admin")))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[dict[str, Any]]:
    """Every partition of ``topics``, asked until the broker that answers knows them all (a topic just created
    reaches every broker's metadata a moment later: UNKNOWN_TOPIC_OR_PARTITION until then)."""
    deadline = time.monotonic() + 30
    while True:
        described = await admin.describe_topics(topics)
        if all(t["error_code"] == 0 for t in described):
            return [p for t in described for p in t["partitions"]]
        assert time.monotonic() < deadline, [t for t in described if t["error_code"]][:3]
        await asyncio.sleep(0.5)


async def _topic_config(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    """A topic's configs, asked until the broker that answers knows the topic (a topic just created reaches
    every broker's metadata a moment later)."""
    deadline = time.monotonic() + 30
    while True:
        response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        resource = next(r for reply in response for r in reply.resources)
        error_code, message, _type, _name, entries = resource[:5]
        if error_code == 0:
            return {entry[0]: entry[1] for entry in entries}
        assert time.monotonic() < deadline, f"{name}: {error_code} {message}"
        await asyncio.sleep(0.5)


async def _processed(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM ops.processed_events"))


async def _until_quiet(conn: asyncpg.Connection, pipeline: Pipeline, quiet: float = 4.0) -> None:
    """Until something was processed and nothing more for ``quiet`` seconds (the letters)."""
    last, since = -1, time.monotonic()
    while True:
        pipeline._check_services()
        count = await _processed(conn)
        if count != last or count == 0:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.5)


async def _until_expected(
    conn: asyncpg.Connection, pipeline: Pipeline, out: Path, within: float, quiet: float = 4.0
) -> list[str]:
    """Until the ledger equals expected.json and nothing more was processed for ``quiet`` seconds (a
    redelivery still in flight could add what the comparison would catch); the last differences on timeout."""
    deadline = time.monotonic() + within
    last, since = -1, time.monotonic()
    while True:
        pipeline._check_services()
        diffs = await compare(conn, out)
        count = await _processed(conn)
        if diffs or count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return diffs
        if time.monotonic() > deadline:
            return diffs
        await asyncio.sleep(1.0)


async def test_cluster_topics_are_replicated_three_times_with_two_in_sync(
    cluster: Stack, admin: AIOKafkaAdminClient
) -> None:
    await kafka.create_topics(cluster.settings("admin"))
    names = all_topic_names()
    for partition in await _partitions(admin, names):
        assert len(partition["replicas"]) == 3, partition
    for name in (INTAKE.name, dlt_name(INTAKE.name)):
        assert (await _topic_config(admin, name))["min.insync.replicas"] == "2", name


async def test_killing_one_broker_mid_feed_changes_nothing(
    cluster: Stack, admin: AIOKafkaAdminClient, tmp_path: Path
) -> None:
    spec = Spec(tenants=2, payers=2, providers=3, days=30, seed=7, tenant_prefix=f"kc{uuid.uuid4().hex[:8]}")
    generate(spec, tmp_path)
    expected = json.loads((tmp_path / "expected.json").read_text())
    feed = feed_order(tmp_path)
    files = [f for f in feed if f.kind == "835"]
    env = {"OFFSETSTREAM_TODAY": expected["today"]}
    conn = await asyncpg.connect(cluster.postgres.dsn)
    try:
        async with Pipeline(cluster, env=env) as pipeline:
            settings = pipeline.settings
            for item in (f for f in feed if f.kind == "letters"):
                await letters.publish(settings, letters.read_import(tmp_path / item.path), item.tenant, "cli")
            await _until_quiet(conn, pipeline)
            # The groups' offsets (an internal topic, created on the first commit) are replicated too.
            assert {len(p["replicas"]) for p in await _partitions(admin, ["__consumer_offsets"])} == {3}
            # The broker that leads the raw files' first partition: the kill hits a leader in use.
            leader = next(p["leader"] for p in await _partitions(admin, [INTAKE.name]) if p["partition"] == 0)
            victim = next(i for i, node in enumerate(cluster.kafka.nodes) if node.node_id == leader)
            producer = AIOKafkaProducer(
                **kafka_security.client_kwargs(settings),
                max_request_size=kafka.MAX_MESSAGE_BYTES,
                acks="all",
                enable_idempotence=True,
            )
            await producer.start()
            try:
                for n, item in enumerate(files):
                    if n == len(files) // 3:
                        await asyncio.to_thread(cluster.kill_broker, victim)
                    content = (tmp_path / item.path).read_bytes()
                    key, value = publish.raw_file_message(content, Path(item.path).name, item.tenant, "cli")
                    await producer.send_and_wait(INTAKE.name, value=value, key=key)
                    await asyncio.sleep(0.1)
            finally:
                await producer.stop()
            # Step: the feed finishes on two brokers; the ledger must be exactly the plan.
            assert await _until_expected(conn, pipeline, tmp_path, within=300) == []
            for tenant in expected["tenants"]:
                assert await ledger_check.check(conn, tenant) == []
            # Step: the killed broker comes back and catches up every replica it missed.
            await asyncio.to_thread(cluster.restart_broker, victim)
            deadline = time.monotonic() + 120
            while True:
                partitions = await _partitions(admin, all_topic_names())
                if all(len(p["isr"]) == 3 for p in partitions):
                    break
                assert time.monotonic() < deadline, [p for p in partitions if len(p["isr"]) < 3][:5]
                await asyncio.sleep(1.0)
            assert await compare(conn, tmp_path) == []
    finally:
        await conn.close()
