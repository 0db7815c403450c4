"""Faults: crashes, broker and database restarts, duplicate and shuffled feeds, poison messages.

Every scenario feeds the same multi-account files into a tenant of its own and must end with exactly the ledger
of a clean run (compared without ids) and a passing ledger check. Kafka only promises at-least-once delivery;
these runs show the pipeline turns that into exactly-once *effect*.
"""

import asyncio
import random
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from feeds import snapshot, write_feed

from cli import dlt, ledger_check
from cli.local_infra import Stack
from cli.runner import Pipeline
from contracts.topics import TOPICS, dlt_name
from shared.kafka_security import client_kwargs
from shared.settings import SERVICES

pytestmark = pytest.mark.integration
ACCOUNTS = 12
CLEAN: dict[str, object] = {}


async def _assert_same(stack: Stack, tenant: str, expected: dict[str, list[tuple[object, ...]]]) -> None:
    """The tenant's ledger equals the clean run's; on a difference, name exactly the rows that differ."""
    got = await snapshot(stack.postgres.dsn, tenant)
    for table, rows in expected.items():
        missing = [r for r in rows if r not in got[table]]
        extra = [r for r in got[table] if r not in rows]
        assert not missing and not extra, f"{table}: missing {missing[:5]} extra {extra[:5]}"


async def _check(stack: Stack, tenant: str) -> None:
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        assert await ledger_check.check(conn, tenant) == []
    finally:
        await conn.close()


async def _clean(stack: Stack, files: list[Path]) -> dict[str, list[tuple[object, ...]]]:
    """The reference ledger: the same files, fed once, in order, with nothing going wrong."""
    if "snapshot" not in CLEAN:
        tenant = f"clean-{uuid.uuid4().hex[:8]}"
        async with Pipeline(stack) as pipeline:
            await pipeline.ingest(files, tenant)
            await pipeline.settle(timeout=240)
        CLEAN["snapshot"] = await snapshot(stack.postgres.dsn, tenant)
        await _check(stack, tenant)
    result = CLEAN["snapshot"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_feed(tmp_path_factory.mktemp("feed"), accounts=ACCOUNTS)


@pytest.mark.parametrize("kill", [True, False], ids=["kill-9", "sigterm"])
async def test_stopping_each_service_mid_feed_changes_nothing(
    stack: Stack, feed: list[Path], kill: bool
) -> None:
    """kill -9 (a crash) or SIGTERM (a deployment's rolling restart) while a batch is in flight: whatever the
    worker had taken but not committed must be redelivered, not acknowledged on the way out."""
    expected = await _clean(stack, feed)
    tenant = f"{'kill' if kill else 'term'}-{uuid.uuid4().hex[:8]}"
    async with Pipeline(stack) as pipeline:
        feeding = asyncio.create_task(pipeline.ingest(list(feed), tenant))
        for service in SERVICES:
            await asyncio.sleep(0.7)
            await asyncio.to_thread(stack.stop_service, f"{service}-0", kill=kill)
            stack.start_service(service, extra_env=pipeline.extra_env)
        await feeding
        await pipeline.settle(timeout=300)
    await _assert_same(stack, tenant, expected)
    await _check(stack, tenant)


async def test_feeding_every_file_twice_in_shuffled_order_changes_nothing(
    stack: Stack, feed: list[Path]
) -> None:
    expected = await _clean(stack, feed)
    tenant = f"twice-{uuid.uuid4().hex[:8]}"
    files = list(feed) * 2
    random.Random(7).shuffle(files)
    async with Pipeline(stack) as pipeline:
        await pipeline.ingest(files, tenant)
        await pipeline.settle(timeout=240)
    await _assert_same(stack, tenant, expected)
    await _check(stack, tenant)


async def test_broker_restart_mid_feed_changes_nothing(stack: Stack, feed: list[Path]) -> None:
    expected = await _clean(stack, feed)
    tenant = f"broker-{uuid.uuid4().hex[:8]}"
    files = list(feed)
    async with Pipeline(stack) as pipeline:
        await pipeline.ingest(files[: len(files) // 2], tenant)
        await pipeline.settle(timeout=240)  # workers up and busy: the restart hits running consumers
        await pipeline.ingest(files[len(files) // 2 :], tenant)
        await asyncio.to_thread(stack.restart_kafka)
        await pipeline.settle(timeout=300)
    await _assert_same(stack, tenant, expected)
    await _check(stack, tenant)


async def test_postgres_restart_mid_feed_changes_nothing(stack: Stack, feed: list[Path]) -> None:
    expected = await _clean(stack, feed)
    tenant = f"pg-{uuid.uuid4().hex[:8]}"
    async with Pipeline(stack) as pipeline:
        feeding = asyncio.create_task(pipeline.ingest(list(feed), tenant))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(stack.restart_postgres)
        await feeding
        await pipeline.settle(timeout=300)
    await _assert_same(stack, tenant, expected)
    await _check(stack, tenant)


async def test_poison_on_every_input_topic_goes_to_its_dlt_and_the_stream_goes_on(
    stack: Stack, feed: list[Path]
) -> None:
    expected = await _clean(stack, feed)
    settings = stack.settings()
    consumed = sorted({t.name for t in TOPICS if t.consumers})
    before = {t: len(await dlt.read_dead_letters(settings, dlt_name(t))) for t in consumed}
    tenant = f"poison-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex.encode()
    async with Pipeline(stack) as pipeline:
        producer = AIOKafkaProducer(**client_kwargs(stack.settings()))
        await producer.start()
        try:
            for topic in consumed:
                await producer.send_and_wait(topic, key=b"poison", value=b"\x00not json " + marker)
                await producer.send_and_wait(topic, key=b"poison", value=b'{"event_id": "x", "payload": 1}')
        finally:
            await producer.stop()
        await pipeline.ingest(list(feed), tenant)
        await pipeline.settle(timeout=240)
    for topic in consumed:
        records = await dlt.read_dead_letters(settings, dlt_name(topic))
        # the majors of one noun (claim payments v1 and v2) share a DLT: each record names its own source
        assert all(dlt_name(r.headers["source_topic"]) == dlt_name(topic) for r in records[before[topic] :])
        new = [r for r in records[before[topic] :] if r.headers["source_topic"] == topic]
        assert len(new) >= 2, f"{topic}: poison not dead-lettered"
        assert any(marker in r.value for r in new), f"{topic}: original bytes not kept"
    await _assert_same(stack, tenant, expected)
    await _check(stack, tenant)
