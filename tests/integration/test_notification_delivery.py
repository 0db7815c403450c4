"""Channels and the delivery log against real peers: the local webhook receiver (signature checked, first N calls
failed), a real SMTP server (aiosmtpd on a free loopback port), and the real PostgreSQL delivery log. Also the
timer: one reminder per receivable + deadline, one digest per tenant + day, both idempotent across re-runs."""

import asyncio
import base64
import email
import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from email.message import Message
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from contracts.events import NotificationEmitted, ReceivableChanged
from services.notification import store
from services.notification.channels import EmailChannel, Outbound, WebhookChannel
from services.notification.delivery import RetryPolicy, deliver_once
from services.notification.domain import Routes
from services.notification.engine import Notifier
from services.notification.timelines import policy_timelines
from shared import envelopes, plugins
from shared.ids import account_key, receivable_id, stable_id
from shared.local_infra import Stack, free_port
from shared.receiver import WebhookReceiver
from shared.settings import Settings
from shared.stream import Incoming

pytestmark = pytest.mark.integration
SECRET = "test-secret"


async def no_sleep(_: float) -> None:
    """Back-off without waiting (the delays themselves are unit-tested)."""


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1 and a free port."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(stack.postgres.dsn, min_size=1, max_size=3)
    try:
        yield p
    finally:
        await p.close()


def outbound(tenant: str, target: str, nid: UUID | None = None) -> Outbound:
    nid = nid or uuid4()
    body = json.dumps({"notification_id": str(nid), "summary": "Payer withheld 10.00"}).encode()
    return Outbound(
        str(nid), tenant, target, body, "[offsetstream info] offset applied FCN1", "Payer withheld 10.00\n"
    )


async def attempts(conn: asyncpg.Connection, tenant: str) -> list[tuple[int, str, int | None]]:
    return [(r["attempt"], r["status"], r["http_status"]) for r in await store.delivery_log(conn, tenant)]


async def test_webhook_retries_with_backoff_then_delivers_once_and_logs_every_attempt(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    receiver = WebhookReceiver(secret=SECRET, fail_first=2)
    url = await receiver.start()
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET))
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    try:
        out = outbound(tenant, url)
        policy = RetryPolicy(max_attempts=5, base_delay=0.2, max_delay=5.0)
        assert await deliver_once(ledger, channel, out, policy, record) == "delivered"
        # A replay of the same notification (redelivery, restart) checks the log and sends nothing.
        assert await deliver_once(ledger, channel, out, policy, record) == "already_delivered"
    finally:
        await channel.close()
        await receiver.stop()

    assert receiver.bad_signatures == 0
    assert receiver.deliveries == {out.notification_id: 1}
    assert await attempts(ledger, tenant) == [(1, "failed", 503), (2, "failed", 503), (3, "delivered", 204)]
    assert 0.1 <= delays[0] <= 0.2 and 0.2 <= delays[1] <= 0.4
    latencies = [r["latency_ms"] for r in await store.delivery_log(ledger, tenant)]
    assert all(ms is not None and ms >= 0 for ms in latencies)


async def test_webhook_gives_up_after_the_limit_and_a_wrong_secret_is_not_retried(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    receiver = WebhookReceiver(secret=SECRET, fail_first=1000)
    url = await receiver.start()
    good, bad = WebhookChannel(), WebhookChannel()
    good.configure(Settings(webhook_secret=SECRET))
    bad.configure(Settings(webhook_secret="wrong"))
    try:
        assert await deliver_once(ledger, good, outbound(tenant, url), RetryPolicy(3), no_sleep) == "gave_up"
        assert await deliver_once(ledger, bad, outbound(tenant, url), RetryPolicy(3), no_sleep) == "gave_up"
    finally:
        await good.close()
        await bad.close()
        await receiver.stop()
    log = await attempts(ledger, tenant)
    assert log == [(1, "failed", 503), (2, "failed", 503), (3, "failed", 503), (1, "failed", 401)]
    assert receiver.deliveries == {}


async def test_email_through_a_real_smtp_server_once_per_notification(
    ledger: asyncpg.Connection, tenant: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel()
    channel.configure(Settings(notification_smtp_port=port, notification_email_from="ar-bot@billing.example"))
    out = outbound(tenant, "ar@clinic.example")
    assert await deliver_once(ledger, channel, out, RetryPolicy(3), no_sleep) == "delivered"
    assert await deliver_once(ledger, channel, out, RetryPolicy(3), no_sleep) == "already_delivered"

    [message] = inbox.messages
    assert inbox.recipients == [["ar@clinic.example"]]
    assert message["Subject"] == "[offsetstream info] offset applied FCN1"
    assert message["Message-ID"] == f"<{out.notification_id}@offsetstream>"
    assert message["X-Offsetstream-Delivery"] == out.notification_id
    assert message.get_payload(decode=True).decode().startswith("Payer withheld 10.00")  # type: ignore[union-attr]
    assert await attempts(ledger, tenant) == [(1, "delivered", 250)]


async def test_email_to_an_unreachable_relay_is_retried_then_given_up(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    channel = EmailChannel()
    channel.configure(Settings(notification_smtp_port=free_port(), notification_timeout_seconds=2.0))
    assert (
        await deliver_once(ledger, channel, outbound(tenant, "ar@x.example"), RetryPolicy(2), no_sleep)
        == "gave_up"
    )
    assert [s for _, s, _ in await attempts(ledger, tenant)] == ["failed", "failed"]


# --- the timer ------------------------------------------------------------------------------------------------


def opened(tenant: str, ref: str, determined: date) -> Incoming:
    payload = ReceivableChanged(
        receivable_id=receivable_id(tenant, "01312", ref),
        payer_id="01312",
        reference=ref,
        status="open",
        policy="medicare",
        determination_date=determined,
        effective_date=determined,
        change_amount=Decimal("300.00"),
        principal=Decimal("300.00"),
        principal_recovered=Decimal("0.00"),
        interest_accrued=Decimal("0.00"),
        interest_recovered=Decimal("0.00"),
        balance=Decimal("300.00"),
        source="timer test",
    )
    env = envelopes.build(
        payload,
        event_id=stable_id(tenant, ref, "opened"),
        event_type="ReceivableOpened",
        tenant_id=tenant,
        account_key=account_key(tenant, "01312", "1234567893"),
        causation_id="timer test",
    )
    return Incoming("remit.receivables.v1", 0, 0, None, env.to_bytes())


async def queued(conn: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT message_id, record FROM ops.outbox WHERE service = 'notification' ORDER BY created_at, message_id"
    )
    out = []
    for row in rows:
        record = json.loads(row["record"])
        env = json.loads(base64.b64decode(record["value"]))
        if env["tenant_id"] == tenant:
            out.append(env)
    return out


async def test_timer_reminds_once_per_deadline_and_digests_once_per_tenant_and_day(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str, tmp_path: Path
) -> None:
    settings = Settings(notification_lead_days=5)
    notifier = Notifier(
        settings=settings,
        routes=Routes.webhook_only(None),
        channels={},
        timeline_of=policy_timelines(plugins.load_plugins(plugins.PAYER_POLICIES)),
        pool_of=lambda: asyncio.sleep(0, pool),
        today=lambda: date(2026, 8, 15),
    )
    # FCN-T determined 2026-08-03: rebuttal deadline 2026-08-18 is 3 days after 2026-08-15.
    async with ledger.transaction():
        [announced] = await notifier.notify(ledger, opened(tenant, "FCN-T", date(2026, 8, 3)))
    facts = json.loads(announced.value)["payload"]["facts"]
    assert (facts["rebuttal_deadline"], facts["recoupment_start"]) == ("2026-08-18", "2026-09-13")

    assert await notifier.tick(ledger, date(2026, 8, 12)) >= 0  # before the window: nothing for FCN-T
    assert await queued(ledger, tenant) == []
    await notifier.tick(ledger, date(2026, 8, 15))
    await notifier.tick(ledger, date(2026, 8, 16))  # re-run on a later day: still one reminder
    [reminder] = await queued(ledger, tenant)
    assert reminder["payload"]["kind"] == "deadline_approaching"
    assert reminder["payload"]["facts"]["milestone"] == "rebuttal_deadline"
    rid = str(receivable_id(tenant, "01312", "FCN-T"))
    assert reminder["event_id"] == str(
        stable_id(tenant, rid, "rebuttal_deadline", date(2026, 8, 18), "deadline")
    )

    # Two notifications routed to the digest on 2026-08-16; the day closes, the timer composes one digest.
    for n in range(2):
        note = NotificationEmitted(
            notification_id=uuid4(),
            kind="interest_accrued",
            severity="warning",
            summary=f"Interest {n}.00 accrued on FCN-T",
            related_event_id=uuid4(),
        )
        await store.add_digest_item(ledger, tenant, date(2026, 8, 16), note)
    await notifier.tick(ledger, date(2026, 8, 16))  # day not closed yet
    assert [e["payload"]["kind"] for e in await queued(ledger, tenant)] == ["deadline_approaching"]
    await notifier.tick(ledger, date(2026, 8, 17))
    await notifier.tick(ledger, date(2026, 8, 18))
    digests = [e for e in await queued(ledger, tenant) if e["payload"]["kind"] == "daily_digest"]
    assert len(digests) == 1
    assert digests[0]["event_id"] == str(stable_id("digest", tenant, "2026-08-16"))
    assert digests[0]["payload"]["facts"]["count"] == "2"
    ids = [e["event_id"] for e in await queued(ledger, tenant)]
    await ledger.execute(
        "UPDATE ops.outbox SET published = true WHERE service = 'notification' AND message_id = ANY($1::text[])",
        ids,
    )
