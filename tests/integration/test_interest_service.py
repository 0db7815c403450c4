"""The interest service as a process on the real broker: handler outputs, the timer's outbox, corrections.

Story (business date pinned to 2026-11-23): FCN-A, 300.00 determined 2026-08-03, is opened; the timer charges
three periods (days 31, 61, 91) at 11.50 % = 2.88 each and publishes them through the outbox. Then a remittance
dated 2026-09-17 (day 45) settles it: the handler reverses periods 2 and 3. FCN-B, recouped on day 20, breaks
Medicare's day-41 rule and raises an alert. On the topic: FCN-A nets 2.88, every event id once.
"""

import asyncio
import json
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import receivable_change

from cli.local_infra import Stack, free_port
from contracts import topics
from contracts.topics import ALERTS, INTEREST, RECEIVABLES
from shared.ids import stable_id
from shared.kafka_security import client_kwargs
from shared.settings import SERVICES

pytestmark = pytest.mark.integration

D = Decimal
DET = date(2026, 8, 3)


def change(
    tenant: str, ref: str, kind: str, effective: date, recovered: str, status: str
) -> tuple[bytes, bytes]:
    env = receivable_change(
        tenant,
        kind,
        reference=ref,
        effective=effective,
        determination=DET,
        principal="300.00",
        recovered=recovered,
        status=status,
        event_id=stable_id(tenant, ref, kind),
        source="service test",
    )
    return env.account_key.encode(), env.to_bytes()


async def read_all(kafka: dict[str, Any], topic: str, tenant: str) -> list[dict[str, Any]]:
    """Every message of ``tenant`` on ``topic`` so far."""
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(topics.topic(topic).partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[dict[str, Any]] = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    try:  # other tests on this shared broker put poison messages on these topics
                        env = json.loads(msg.value or b"{}")
                    except ValueError:
                        continue
                    if isinstance(env, dict) and env.get("tenant_id") == tenant:
                        found.append(env)
        return found
    finally:
        await consumer.stop()


async def wait_for(
    kafka: dict[str, Any],
    topic: str,
    tenant: str,
    done: Callable[[list[dict[str, Any]]], bool],
    within: float = 90.0,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = await read_all(kafka, topic, tenant)
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: condition not met; saw {len(found)} messages")
        await asyncio.sleep(1.0)


def interest_of(found: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in found if e["payload"]["reference"] == ref]


async def test_interest_service_publishes_ticks_and_corrections(stack: Stack, tenant: str) -> None:
    kafka = client_kwargs(stack.settings())
    ports = json.dumps({s: free_port() for s in SERVICES})
    env = {
        "OFFSETSTREAM_TODAY": "2026-11-23",
        "OFFSETSTREAM_INTEREST_TICK_SECONDS": "1",
        "OFFSETSTREAM_WEB_PORTS": ports,
    }
    stack.start_service("interest", worker_id=7, extra_env=env)
    producer = AIOKafkaProducer(**kafka, acks="all")
    await producer.start()
    try:
        for msg in (
            change(tenant, "FCN-A", "ReceivableOpened", DET, "0.00", "open"),
            change(tenant, "FCN-B", "ReceivableOpened", DET, "0.00", "open"),
            change(tenant, "FCN-B", "ReceivableSettled", date(2026, 8, 23), "300.00", "settled"),
        ):
            await producer.send_and_wait(RECEIVABLES.name, key=msg[0], value=msg[1])
        # The timer charges FCN-A's three periods through the outbox.
        await wait_for(kafka, INTEREST.name, tenant, lambda f: len(interest_of(f, "FCN-A")) >= 3)
        key, value = change(tenant, "FCN-A", "ReceivableSettled", date(2026, 9, 17), "300.00", "settled")
        await producer.send_and_wait(RECEIVABLES.name, key=key, value=value)
        found = await wait_for(kafka, INTEREST.name, tenant, lambda f: len(interest_of(f, "FCN-A")) >= 5)
        alerts = await wait_for(kafka, ALERTS.name, tenant, lambda f: len(f) >= 1)
    finally:
        await producer.stop()
        await asyncio.to_thread(stack.stop_service, "interest-7")

    events = interest_of(found, "FCN-A")
    assert sorted((int(e["period_number"]), e["amount"]) for e in events) == [
        (1, "2.88"),
        (2, "-2.88"),
        (2, "2.88"),
        (3, "-2.88"),
        (3, "2.88"),
    ]
    assert len({e["event_id"] for e in found}) == len(found)
    assert interest_of(found, "FCN-B") == []
    [alert] = alerts
    assert alert["payload"]["kind"] == "recoupment_rule_violation"
    assert alert["payload"]["reference"] == "FCN-B"
