"""Channels and the delivery log against real peers: the local webhook receiver (signature checked, first N calls
failed), a real SMTP server (aiosmtpd on a free loopback port), and the real PostgreSQL delivery log. Also the
timer: one reminder per receivable + deadline, one digest per tenant + day, both idempotent across re-runs."""

import asyncio
import base64
import email
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date
from email.message import Message
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from harness import receivable_change

from cli.local_infra import Stack, free_port
from cli.receiver import WebhookReceiver
from contracts.envelope import Envelope
from contracts.events import NotificationEmitted, ReceivableChanged
from contracts.topics import NOTIFICATIONS, RECEIVABLES
from examples import webhook_receiver as example
from services.notification.channels import EmailChannel, Outbound, SmtpSecurityError, WebhookChannel
from services.notification.delivery import Dispatcher, RetryPolicy, deliver_once, queue_deliveries
from services.notification.engine import Notifier
from services.notification.routes import Routes
from services.notification.store import NotificationStore
from services.notification.timelines import policy_timelines
from shared import plugins
from shared.ids import receivable_id, stable_id
from shared.messages import Incoming, Outgoing
from shared.settings import Settings
from shared.webhook import tenant_key

pytestmark = pytest.mark.integration
STORE = NotificationStore()
SECRET = "integration-test-webhook-master-key-0001"


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
    return [(r.attempt, r.status, r.http_status) for r in await STORE.delivery_log(conn, tenant)]


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
        assert await deliver_once(STORE, ledger, channel, out, policy, record) == "delivered"
        # A replay of the same notification (redelivery, restart) checks the log and sends nothing.
        assert await deliver_once(STORE, ledger, channel, out, policy, record) == "already_delivered"
    finally:
        await channel.close()
        await receiver.stop()

    assert receiver.bad_signatures == 0
    assert receiver.deliveries == {out.notification_id: 1}
    assert await attempts(ledger, tenant) == [(1, "failed", 503), (2, "failed", 503), (3, "delivered", 204)]
    assert 0.1 <= delays[0] <= 0.2 and 0.2 <= delays[1] <= 0.4
    latencies = [r.latency_ms for r in await STORE.delivery_log(ledger, tenant)]
    assert all(ms is not None and ms >= 0 for ms in latencies)


async def test_webhook_gives_up_after_the_limit_and_a_wrong_secret_is_not_retried(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    receiver = WebhookReceiver(secret=SECRET, fail_first=1000)
    url = await receiver.start()
    good, bad = WebhookChannel(), WebhookChannel()
    good.configure(Settings(webhook_secret=SECRET))
    bad.configure(Settings(webhook_secret="a-different-master-key-than-the-receiver-has"))
    try:
        assert (
            await deliver_once(STORE, ledger, good, outbound(tenant, url), RetryPolicy(3), no_sleep)
            == "gave_up"
        )
        assert (
            await deliver_once(STORE, ledger, bad, outbound(tenant, url), RetryPolicy(3), no_sleep)
            == "gave_up"
        )
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
    channel.configure(
        Settings(
            notification_smtp_port=port,
            notification_email_from="ar-bot@billing.example",
            notification_smtp_starttls=False,  # aiosmtpd without TLS: the local-test opt-out
        )
    )
    out = outbound(tenant, "ar@clinic.example")
    assert await deliver_once(STORE, ledger, channel, out, RetryPolicy(3), no_sleep) == "delivered"
    assert await deliver_once(STORE, ledger, channel, out, RetryPolicy(3), no_sleep) == "already_delivered"

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
        await deliver_once(STORE, ledger, channel, outbound(tenant, "ar@x.example"), RetryPolicy(2), no_sleep)
        == "gave_up"
    )
    assert [s for _, s, _ in await attempts(ledger, tenant)] == ["failed", "failed"]


# --- the timer ------------------------------------------------------------------------------------------------


def opened(tenant: str, ref: str, determined: date) -> Envelope[ReceivableChanged]:
    env = receivable_change(
        tenant,
        "ReceivableOpened",
        reference=ref,
        effective=determined,
        determination=determined,
        principal="300.00",
        event_id=stable_id(tenant, ref, "opened"),
        source="timer test",
    )
    return RECEIVABLES.parse(env.to_bytes())


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
        store=STORE,
    )
    # FCN-T determined 2026-08-03: rebuttal deadline 2026-08-18 is 3 days after 2026-08-15.
    async with ledger.transaction():
        [[announced]] = await notifier.on_upstream(ledger, [opened(tenant, "FCN-T", date(2026, 8, 3))])
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
        await STORE.add_digest_items(
            ledger,
            [(tenant, date(2026, 8, 16), note.notification_id, note.kind, note.severity, note.summary)],
        )
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


# --- issue 16: webhooks a security team would accept ----------------------------------------------------------


async def test_a_redirect_is_a_failed_attempt_and_is_never_followed(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    elsewhere = WebhookReceiver(secret=SECRET)
    other_host = await elsewhere.start()
    redirecting = WebhookReceiver(secret=SECRET, redirect_to=other_host)
    url = await redirecting.start()
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET))
    try:
        result = await deliver_once(STORE, ledger, channel, outbound(tenant, url), RetryPolicy(2), no_sleep)
    finally:
        await channel.close()
        await redirecting.stop()
        await elsewhere.stop()
    assert result == "gave_up"  # retried like any failure, then dead-lettered by the dispatcher
    assert elsewhere.calls == 0, "the signed body went to the host the redirect named"
    assert await attempts(ledger, tenant) == [(1, "failed", 307), (2, "failed", 307)]
    [error, _] = [r.error for r in await STORE.delivery_log(ledger, tenant)]
    assert error == f"HTTP 307 redirect to 127.0.0.1:{elsewhere.port} not followed"


async def test_each_tenant_signs_with_its_own_key(ledger: asyncpg.Connection, tenant: str) -> None:
    # Clinic A's receiver knows only clinic A's key (derived from the master key, as handed to it).
    clinic_a, clinic_b, own = tenant, f"{tenant}-b", f"{tenant}-own"
    receiver = WebhookReceiver(secrets={clinic_a: tenant_key(SECRET, clinic_a)})
    url = await receiver.start()
    own_key = "clinic-supplied-key-for-its-own-receiver-0001"
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET, webhook_secrets={own: own_key}))
    try:
        assert await deliver_once(
            STORE, ledger, channel, outbound(clinic_a, url), RetryPolicy(1), no_sleep
        ) == ("delivered")
        # Clinic B's delivery, signed with B's key, does not verify with A's: A cannot forge B's either.
        assert await deliver_once(
            STORE, ledger, channel, outbound(clinic_b, url), RetryPolicy(1), no_sleep
        ) == ("gave_up")
        # A tenant listed in webhook_secrets signs with its own key, not the derived one.
        receiver.secrets = {own: own_key}
        assert await deliver_once(STORE, ledger, channel, outbound(own, url), RetryPolicy(1), no_sleep) == (
            "delivered"
        )
    finally:
        await channel.close()
        await receiver.stop()
    assert tenant_key(SECRET, clinic_a) != tenant_key(SECRET, clinic_b)
    assert [h for _, _, h in await attempts(ledger, clinic_b)] == [401]
    assert receiver.bad_signatures == 1


async def test_the_signature_verifies_with_the_documented_example_receiver(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """What the sender puts on the wire verifies with examples/webhook_receiver.py, the code docs/webhooks.md
    shows: same key, signed content, headers and replay window."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        status = example.handle(
            tenant_key(SECRET, tenant), tenant, example.SeenDeliveries(), dict(request.headers), seen[-1][1]
        )
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET))
    out = outbound(tenant, f"http://127.0.0.1:{port}/hook")
    out = Outbound(
        out.notification_id, tenant, out.target, json.dumps({"tenant_id": tenant}).encode(), "", ""
    )
    try:
        assert await deliver_once(STORE, ledger, channel, out, RetryPolicy(1), no_sleep) == "delivered"
    finally:
        await channel.close()
        await runner.cleanup()
    [(headers, body)] = seen
    assert headers["X-Offsetstream-Delivery"] == out.notification_id
    assert headers["X-Offsetstream-Tenant"] == tenant
    key, signature = tenant_key(SECRET, tenant), headers["X-Offsetstream-Signature"]
    assert example.verify(key, signature, out.notification_id, body)
    sent_at = int(signature.split(",")[0].removeprefix("t="))
    assert not example.verify(key, signature, out.notification_id, body, now=sent_at + 301)  # replayed later
    assert not example.verify(key, signature, str(uuid4()), body)  # the delivery id is signed


def queued_job(tenant: str, target: str, n: int) -> tuple[Outbound, Incoming]:
    out = outbound(tenant, target)
    return out, Incoming(NOTIFICATIONS.name, 0, n, tenant.encode(), out.body)


async def test_a_slow_receiver_delays_only_its_own_tenant(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    slow_tenant, fast_tenant = tenant, f"{tenant}-fast"
    slow, fast = WebhookReceiver(secret=SECRET, delay=12.0), WebhookReceiver(secret=SECRET)
    slow_url, fast_url = await slow.start(), await fast.start()
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET))
    letters: list[Outgoing] = []

    async def publish(records: Sequence[Outgoing]) -> None:
        letters.extend(records)

    dispatcher = Dispatcher(
        lambda: asyncio.sleep(0, pool),
        {"webhook": channel},
        RetryPolicy(5),
        publish,
        owner="test",
        store=STORE,
        tenants=frozenset({slow_tenant, fast_tenant}),
    )
    # The slow clinic's three notifications are queued first, as the consumer would, then the fast one's.
    async with ledger.transaction():
        jobs = [("webhook", *queued_job(slow_tenant, slow_url, n)) for n in range(3)]
        fast_out, fast_source = queued_job(fast_tenant, fast_url, 3)
        await queue_deliveries(ledger, [*jobs, ("webhook", fast_out, fast_source)])
    try:
        started = time.monotonic()
        assert await dispatcher.poll() == 2  # one drain task per destination
        for _ in range(250):
            if fast.deliveries:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        assert fast.deliveries == {fast_out.notification_id: 1}
        assert took < 2.0, f"the fast receiver waited {took:.1f}s behind the slow one"
        await asyncio.sleep(0.2)
        assert slow.calls == 1, "one request in flight per destination, in order"
        rows = await ledger.fetch(
            "SELECT tenant_id FROM notification.delivery_queue WHERE tenant_id = ANY($1::text[])",
            [slow_tenant, fast_tenant],
        )
        assert [r["tenant_id"] for r in rows] == [slow_tenant] * 3  # the fast row is done and gone
    finally:
        await dispatcher.stop()
        await channel.close()
        await slow.stop()
        await fast.stop()
    assert letters == []


async def test_the_dispatcher_dead_letters_what_gives_up_and_sets_the_status(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    channel = WebhookChannel()
    channel.configure(Settings(webhook_secret=SECRET))
    letters: list[Outgoing] = []

    async def publish(records: Sequence[Outgoing]) -> None:
        letters.extend(records)

    out, source = queued_job(tenant, dead_url, 7)
    await ledger.execute(
        """INSERT INTO notification.notifications (tenant_id, notification_id, kind, severity, summary, facts,
               related_event_id, status) VALUES ($1, $2, 'offset_applied', 'info', 's', '{}', $2, 'queued')""",
        tenant,
        UUID(out.notification_id),
    )
    await queue_deliveries(ledger, [("webhook", out, source)])
    dispatcher = Dispatcher(
        lambda: asyncio.sleep(0, pool),
        {"webhook": channel},
        RetryPolicy(2),
        publish,
        owner="test",
        store=STORE,
        sleep=no_sleep,
        tenants=frozenset({tenant}),
    )
    try:
        assert await dispatcher.poll() == 1
        await dispatcher.idle()
    finally:
        await channel.close()
    [letter] = letters
    headers = dict(letter.headers)
    assert letter.topic == "remit.notifications.dlt"
    assert (headers["reason"], headers["source_offset"]) == (b"delivery_gave_up", b"7")
    assert [s for _, s, _ in await attempts(ledger, tenant)] == ["failed", "failed"]
    status = await ledger.fetchval(
        "SELECT status FROM notification.notifications WHERE tenant_id = $1", tenant
    )
    assert status == "failed"
    assert not await ledger.fetch("SELECT 1 FROM notification.delivery_queue WHERE tenant_id = $1", tenant)


# --- SMTP: STARTTLS by default, credentials only over TLS --------------------------------------------------


def test_a_login_without_starttls_is_refused_at_start_up() -> None:
    channel = EmailChannel()
    with pytest.raises(SmtpSecurityError, match="only sent over TLS"):
        channel.configure(
            Settings(
                notification_smtp_username="relay-user",
                notification_smtp_password="relay-password",
                notification_smtp_starttls=False,
            )
        )


async def test_starttls_is_on_by_default_and_a_plain_relay_gets_nothing(
    ledger: asyncpg.Connection, tenant: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    channel = EmailChannel()
    channel.configure(Settings(notification_smtp_port=port))
    assert channel.starttls
    out = outbound(tenant, "ar@clinic.example")
    assert await deliver_once(STORE, ledger, channel, out, RetryPolicy(3), no_sleep) == "gave_up"
    assert inbox.messages == []
    [row] = await STORE.delivery_log(ledger, tenant)  # not retried: the relay will not grow TLS
    assert row.error == "relay does not offer STARTTLS"


class Logins:
    """aiosmtpd authenticator recording the logins it saw and whether TLS was up."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.seen.append((data.login.decode(), session.ssl is not None))
        return AuthResult(success=data.password == b"relay-password")


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the relay's), and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_email_over_starttls_with_a_login(
    ledger: asyncpg.Connection, tenant: str, tls_cert: tuple[Path, Path]
) -> None:
    cert, key = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, logins, port = Inbox(), Logins(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=logins,
        auth_require_tls=True,
    )
    controller.start()
    channel = EmailChannel()
    channel.configure(
        Settings(
            notification_smtp_port=port,
            notification_smtp_ca_file=cert,
            notification_smtp_username="relay-user",
            notification_smtp_password="relay-password",
        )
    )
    try:
        out = outbound(tenant, "ar@clinic.example")
        assert await deliver_once(STORE, ledger, channel, out, RetryPolicy(1), no_sleep) == "delivered"
    finally:
        controller.stop()
    assert logins.seen == [("relay-user", True)]  # the login went over TLS
    assert [m["X-Offsetstream-Delivery"] for m in inbox.messages] == [out.notification_id]
