"""The notification service as a process on the real broker and database, delivering to a real webhook receiver
and a real SMTP server; then SIGKILLed in the middle of a burst and restarted.

Story 1 (routing): a receivable opens (webhook + e-mail, with its Medicare timeline), an offset is applied to it
(the join of remit.offsets.v1 and remit.receivables.v1 says what is left), interest goes to the digest, an
alert is sent, the timer reminds once of the rebuttal deadline, and a dead endpoint ends on the DLT.
Story 2 (crash): 240 alerts; the worker is killed after ~60 deliveries and restarted; every notification ends
delivered exactly once in the log, and the receiver saw no duplicate outside the one in-doubt window.
"""

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiosmtpd.controller import Controller
from harness import receivable_change
from integration.test_notification_delivery import Inbox

from cli.local_infra import Stack, free_port
from cli.receiver import WebhookReceiver
from contracts.events import AlertRaised, Allocation, OffsetRecorded
from contracts.topics import ALERTS, NOTIFICATIONS, OFFSETS, RECEIVABLES
from shared import envelopes
from shared.ids import account_key, receivable_id, stable_id
from shared.kafka_security import client_kwargs
from shared.settings import SERVICES, Settings

pytestmark = pytest.mark.integration
D = Decimal
SECRET = "service-test-webhook-master-key-000001"
PAYER, PAYEE = "01312", "1234567893"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def base_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "OFFSETSTREAM_WEBHOOK_URL": url,
        "OFFSETSTREAM_WEBHOOK_SECRET": SECRET,
        "OFFSETSTREAM_WEB_PORTS": json.dumps({s: free_port() for s in SERVICES}),
        "OFFSETSTREAM_NOTIFICATION_BACKOFF_SECONDS": "0.05",
        "BROKER_SESSION_TIMEOUT": "10",  # a SIGKILLed member leaves the group after 10 s, not Faust's 60
        "BROKER_HEARTBEAT_INTERVAL": "1",
        **extra,
    }


def envelope(
    tenant: str, payload: Any, event_id: UUID, event_type: str, cause: str = "test"
) -> tuple[bytes, bytes]:
    key = account_key(tenant, PAYER, PAYEE if event_type != "AlertRaised" else str(event_id))
    env = envelopes.build(
        payload,
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant,
        account_key=key,
        causation_id=cause,
    )
    return key.encode(), env.to_bytes()


def alert(tenant: str, n: int, kind: str = "recoupment_during_pause") -> tuple[bytes, bytes]:
    payload = AlertRaised(
        alert_id=stable_id(tenant, "alert", n),
        kind=kind,
        payer_id=PAYER,
        reference=f"FCN{n:05d}",
        amount=D("10.00"),
        observed_on=date(2026, 8, 15),
        detail="recouped while an appeal pauses recovery",
    )
    return envelope(tenant, payload, payload.alert_id, "AlertRaised")


def receivable(tenant: str, event: str, balance: str, cause: str) -> tuple[bytes, bytes]:
    payload = receivable_change(
        tenant,
        event,
        reference="FCN-S",
        effective=date(2026, 8, 10),
        determination=date(2026, 8, 3),
        principal="300.00",
        recovered=D("300.00") - D(balance),
        amount="300.00",
        status="open" if balance != "0.00" else "settled",
        payer=PAYER,
        source="service test",
    ).payload
    return envelope(tenant, payload, stable_id(tenant, event), event, cause)


def applied_offset(tenant: str, offset_id: UUID) -> tuple[bytes, bytes]:
    payload = OffsetRecorded(
        offset_id=offset_id,
        remittance_id=stable_id(tenant, "remittance"),
        payer_id=PAYER,
        trace_number="EFT260810001",
        payment_date=date(2026, 8, 10),
        segment_ordinal=1,
        pair_index=1,
        reason_code="WO",
        reference="FCN-S",
        amount=D("100.00"),
        bucket="allocated",
        allocations=(
            Allocation(
                receivable_id=receivable_id(tenant, PAYER, "FCN-S"),
                reference="FCN-S",
                to_interest=D("0.00"),
                to_principal=D("100.00"),
            ),
        ),
        unmatched_amount=D("0.00"),
        reason="reference FCN-S",
    )
    return envelope(tenant, payload, stable_id(tenant, "offset-event"), "OffsetApplied")


async def publish(kafka: dict[str, Any], messages: list[tuple[str, tuple[bytes, bytes]]]) -> None:
    producer = AIOKafkaProducer(**kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for topic, (k, v) in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def until(condition: Callable[[], Any], within: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await _value(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


async def _value(v: Any) -> Any:
    return await v if asyncio.iscoroutine(v) else v


async def rows(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def dead_letters(kafka: dict[str, Any], tenant: str) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(NOTIFICATIONS.dlt, p) for p in range(3)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                for msg in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if json.loads(msg.value or b"{}").get("tenant_id") == tenant:
                        found.append(dict(msg.headers))
        return found
    finally:
        await consumer.stop()


def tenant_ids(receiver: WebhookReceiver, tenant: str) -> list[str]:
    return [d for d, body in receiver.bodies.items() if json.loads(body)["tenant_id"] == tenant]


async def test_routes_rules_channels_timer_and_dead_letter(
    stack: Stack, tenant: str, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp
    receiver = WebhookReceiver(secret=SECRET, fail_first=2)  # the first two calls fail: retries are needed
    url = await receiver.start()
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    routes = {
        "default": [{"channel": "webhook"}],
        "tenants": {
            tenant: {
                "receivable_opened": [
                    {"channel": "webhook"},
                    {"channel": "email", "target": "ar@clinic.example"},
                ],
                "interest_accrued": [{"channel": "email", "target": "ar@clinic.example", "mode": "digest"}],
                "unmatched_recovery_aging": [{"channel": "webhook", "target": dead_url}],
            }
        },
    }
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(routes))
    env = base_env(
        url,
        OFFSETSTREAM_NOTIFICATION_ROUTES=str(path),
        OFFSETSTREAM_NOTIFICATION_SMTP_PORT=str(smtp_port),
        OFFSETSTREAM_NOTIFICATION_SMTP_STARTTLS="false",  # aiosmtpd without TLS: the local-test opt-out
        OFFSETSTREAM_NOTIFICATION_TICK_SECONDS="1",
        OFFSETSTREAM_NOTIFICATION_LEAD_DAYS="5",
        OFFSETSTREAM_TODAY="2026-08-15",
        OFFSETSTREAM_WEBHOOK_MAX_ATTEMPTS="3",
    )
    offset_id = stable_id(tenant, "plb")
    stack.start_service("notification", worker_id=0, extra_env=env)
    try:
        await publish(
            client_kwargs(stack.settings()),
            [
                (RECEIVABLES.name, receivable(tenant, "ReceivableOpened", "300.00", "letter")),
                # The balance half arrives before the allocation half: the join waits for both.
                (RECEIVABLES.name, receivable(tenant, "ReceivableReduced", "200.00", str(offset_id))),
                (OFFSETS.name, applied_offset(tenant, offset_id)),
                (ALERTS.name, alert(tenant, 1)),
                (ALERTS.name, alert(tenant, 2, "unmatched_recovery_aging")),
            ],
        )
        dsn = stack.postgres.dsn
        await until(lambda: len(tenant_ids(receiver, tenant)) >= 4, 75, "four webhook deliveries", 0.5)
        await until(lambda: len(inbox.messages) >= 1, 10, "the e-mail")
        await until(lambda: dead_letters(client_kwargs(stack.settings()), tenant), 20, "the dead letter", 0.5)
        await asyncio.sleep(2.5)  # two more timer ticks: the reminder must not repeat
    finally:
        await asyncio.to_thread(stack.stop_service, "notification-0")
        await receiver.stop()

    kinds = {json.loads(receiver.bodies[d])["payload"]["kind"]: d for d in tenant_ids(receiver, tenant)}
    assert set(kinds) == {
        "receivable_opened",
        "offset_applied",
        "recoupment_during_pause",
        "deadline_approaching",
    }
    applied = json.loads(receiver.bodies[kinds["offset_applied"]])["payload"]
    assert applied["facts"]["applied"] == "100.00" and applied["facts"]["balance_left"] == "200.00"
    opened = json.loads(receiver.bodies[kinds["receivable_opened"]])["payload"]["facts"]
    assert (opened["rebuttal_deadline"], opened["interest_start"], opened["recoupment_start"]) == (
        "2026-08-18",
        "2026-09-03",
        "2026-09-13",
    )
    reminder = json.loads(receiver.bodies[kinds["deadline_approaching"]])["payload"]["facts"]
    assert (reminder["milestone"], reminder["days_left"]) == ("rebuttal_deadline", "3")
    assert receiver.duplicates == 0 and receiver.bad_signatures == 0

    [mail] = inbox.messages
    assert mail["Subject"] == "[offsetstream action] receivable opened FCN-S"
    assert mail["X-Offsetstream-Delivery"] == kinds["receivable_opened"]

    log = await rows(dsn, "SELECT * FROM notification.deliveries WHERE tenant_id = $1 ORDER BY 1", tenant)
    # The receiver's first two answers were 503 and were retried. Other tenants' notifications (events other
    # tests left on this shared broker) may be the ones that met them, so read every tenant's attempts to it.
    every_tenant = await rows(dsn, "SELECT * FROM notification.deliveries WHERE target = $1 ORDER BY 1", url)
    assert [r["http_status"] for r in every_tenant[:2]] == [503, 503]
    dead = [r for r in log if r["target"] == dead_url]
    assert [r["status"] for r in dead] == ["failed"] * 3
    [headers] = await dead_letters(client_kwargs(stack.settings()), tenant)
    assert headers["reason"] == b"delivery_gave_up"
    statuses = {
        r["kind"]: r["status"]
        for r in await rows(
            dsn, "SELECT kind, status FROM notification.notifications WHERE tenant_id = $1", tenant
        )
    }
    assert statuses["unmatched_recovery_aging"] == "failed"
    assert statuses["receivable_opened"] == "delivered"


BURST = 240


async def test_sigkill_mid_burst_then_restart_delivers_every_notification_once(
    stack: Stack, tenant: str
) -> None:
    receiver = WebhookReceiver(secret=SECRET)
    url = await receiver.start()
    env = base_env(url)
    started = time.monotonic()
    stack.start_service("notification", worker_id=0, extra_env=env)
    try:
        # Warm up: the worker has joined its group and delivers.
        await publish(client_kwargs(stack.settings()), [(ALERTS.name, alert(tenant, 0))])
        await until(lambda: len(tenant_ids(receiver, tenant)) >= 1, 60, "the first delivery", 0.2)
        await publish(
            client_kwargs(stack.settings()),
            [(ALERTS.name, alert(tenant, n)) for n in range(1, BURST + 1)],
        )
        await until(lambda: len(tenant_ids(receiver, tenant)) >= 60, 30, "60 deliveries", 0.001)
        await asyncio.to_thread(stack.stop_service, "notification-0", kill=True)  # SIGKILL mid-burst
        at_kill = len(tenant_ids(receiver, tenant))
        assert at_kill < BURST, "the burst finished before the kill; make it bigger"
        stack.start_service("notification", worker_id=0, extra_env=env)
        await until(lambda: len(tenant_ids(receiver, tenant)) >= BURST + 1, 75, "every delivery", 0.2)
        await asyncio.sleep(2.0)  # let redelivered offsets run through the log check
    finally:
        await asyncio.to_thread(stack.stop_service, "notification-0")
        await receiver.stop()

    dsn = stack.postgres.dsn
    notes = {
        str(r["notification_id"])
        for r in await rows(
            dsn, "SELECT notification_id FROM notification.notifications WHERE tenant_id = $1", tenant
        )
    }
    assert len(notes) == BURST + 1
    assert notes == set(tenant_ids(receiver, tenant)), "every notification id reached the receiver"
    log = await rows(
        dsn,
        "SELECT notification_id, status FROM notification.deliveries WHERE tenant_id = $1 ORDER BY 1",
        tenant,
    )
    delivered = [str(r["notification_id"]) for r in log if r["status"] == "delivered"]
    assert sorted(delivered) == sorted(notes), "exactly one delivered attempt per notification in the log"
    in_doubt = {str(r["notification_id"]) for r in log if r["status"] == "sending"}
    duplicated = {d for d in tenant_ids(receiver, tenant) if receiver.deliveries[d] > 1}
    # The only possible duplicates are the requests of the round in flight when the worker died (2xx sent,
    # the round's outcomes not yet committed); their log keeps the 'sending' rows that prove it, and a round
    # is one destination's batch at most. Anything else would be a real bug.
    assert duplicated <= in_doubt
    assert len(in_doubt) <= Settings().notification_delivery_batch
    assert receiver.bad_signatures == 0
    print(
        f"\nkilled after {at_kill}/{BURST + 1} deliveries; in-doubt {len(in_doubt)}, receiver duplicates "
        f"{receiver.duplicates}; {time.monotonic() - started:.1f}s"
    )


async def test_a_receiver_answering_in_12_seconds_delays_only_its_own_tenant(
    stack: Stack, tenant: str, tmp_path: Path
) -> None:
    slow_tenant, fast_tenant = tenant, f"{tenant}-fast"
    slow, fast = WebhookReceiver(secret=SECRET, delay=12.0), WebhookReceiver(secret=SECRET)
    slow_url, fast_url = await slow.start(), await fast.start()
    routes = {
        "tenants": {
            slow_tenant: {"*": [{"channel": "webhook", "target": slow_url}]},
            fast_tenant: {"*": [{"channel": "webhook", "target": fast_url}]},
        }
    }
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(routes))
    stack.start_service(
        "notification", worker_id=0, extra_env=base_env(fast_url, OFFSETSTREAM_NOTIFICATION_ROUTES=str(path))
    )
    try:
        await publish(client_kwargs(stack.settings()), [(ALERTS.name, alert(fast_tenant, 0))])
        await until(lambda: tenant_ids(fast, fast_tenant), 60, "the fast tenant's first delivery", 0.1)
        # The slow clinic's receiver is holding a request; then the fast clinic gets a notification.
        await publish(
            client_kwargs(stack.settings()), [(ALERTS.name, alert(slow_tenant, n)) for n in range(1, 4)]
        )
        await until(lambda: slow.calls >= 1, 20, "the slow receiver's first request", 0.02)
        sent = time.monotonic()
        await publish(client_kwargs(stack.settings()), [(ALERTS.name, alert(fast_tenant, 4))])
        await until(lambda: len(tenant_ids(fast, fast_tenant)) >= 2, 2.0, "the fast tenant within 2 s", 0.02)
        took = time.monotonic() - sent
    finally:
        await asyncio.to_thread(stack.stop_service, "notification-0")
        await slow.stop()
        await fast.stop()
    assert slow.deliveries == {}, "the slow receiver never answered within the read timeout"
    assert fast.bad_signatures == 0
    print(f"\nfast tenant delivered {took:.2f}s after publishing, behind a receiver answering in 12 s")


@pytest.mark.parametrize("secret", ["change-me", ""])
async def test_the_service_refuses_to_start_with_a_default_or_empty_webhook_secret(
    stack: Stack, secret: str
) -> None:
    env = base_env("https://clinic.example/hook", OFFSETSTREAM_WEBHOOK_SECRET=secret)
    pid = stack.start_service("notification", worker_id=9, extra_env=env)
    exited: int | None = None
    try:
        for _ in range(600):
            done, status = await asyncio.to_thread(os.waitpid, pid, os.WNOHANG)
            if done:
                exited = os.waitstatus_to_exitcode(status)
                break
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stack.stop_service, "notification-9")
    assert exited is not None and exited != 0, "the service started with a default webhook secret"
    log = (Path(stack.root) / "logs" / "notification-9.log").read_text(errors="replace")
    assert "OFFSETSTREAM_WEBHOOK_SECRET cannot sign webhooks" in log
    assert not secret or secret not in log, "the refused value is never written out"
