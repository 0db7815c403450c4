"""The dispatcher works each destination in rounds (issue #18): a round leases up to ``batch`` jobs, checks the
log and records them 'sending' in one statement, sends them in order, and records every outcome in one
statement. These tests drive it against the real PostgreSQL with a scripted channel plugin (what each
notification's attempts answer), so the log, the queue, the statuses and the dead letters can be checked
exactly: a failing destination beside a healthy one, a job rejected or retried inside a round, a crash
between the sends and the round's record, and the statements a round costs."""

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from integration import test_notification_delivery as delivery_tests

from cli.local_infra import Stack
from contracts.topics import NOTIFICATIONS
from services.notification.channels import Outbound, Outcome
from services.notification.delivery import Dispatcher, RetryPolicy, queue_deliveries
from services.notification.store import NotificationStore
from shared import db
from shared.messages import Incoming, Outgoing
from shared.settings import Settings

pytestmark = pytest.mark.integration
STORE = NotificationStore()
pool = delivery_tests.pool  # the fixture: a small pool on the session's ledger
no_sleep = delivery_tests.no_sleep


class Scripted:
    """A channel plugin whose answers are scripted per target and notification: a list of statuses, one per
    attempt (then ``delivered``). ``hold`` makes the attempt of that notification wait forever (a worker that
    dies with the request in flight). Every call is counted, as a receiver would see it."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], list[str]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.order: list[tuple[str, str]] = []
        self.hold: str | None = None

    def configure(self, settings: Settings) -> None:
        del settings

    async def send(self, outbound: Outbound) -> Outcome:
        key = (outbound.target, outbound.notification_id)
        self.calls[key] += 1
        self.order.append(key)
        if outbound.notification_id == self.hold:
            await asyncio.Event().wait()
        answers = self.script.get(key, [])
        status = answers.pop(0) if answers else "delivered"
        if status == "delivered":
            return Outcome("delivered", 204)
        return Outcome("rejected" if status == "rejected" else "retry", 400 if status == "rejected" else 503)

    async def close(self) -> None:
        pass


async def queue(conn: asyncpg.Connection, tenant: str, target: str, count: int, first: int = 0) -> list[str]:
    """``count`` notifications of ``tenant`` (rows in 'queued', as the consumer records them) queued for
    ``target``; their ids, in queue order."""
    ids = [uuid4() for _ in range(count)]
    await conn.executemany(
        """INSERT INTO notification.notifications (tenant_id, notification_id, kind, severity, summary, facts,
               related_event_id, status) VALUES ($1, $2, 'offset_applied', 'info', 's', '{}', $2, 'queued')
           ON CONFLICT DO NOTHING""",
        [(tenant, nid) for nid in ids],
    )
    jobs = []
    for n, nid in enumerate(ids):
        body = f'{{"notification_id": "{nid}"}}'.encode()
        out = Outbound(str(nid), tenant, target, body, "[offsetstream info] offset applied", "text\n")
        jobs.append(("scripted", out, Incoming(NOTIFICATIONS.name, 0, first + n, tenant.encode(), body)))
    await queue_deliveries(conn, jobs)
    return [str(nid) for nid in ids]


def dispatcher(
    pool: asyncpg.Pool, channel: Scripted, tenant: str, letters: list[Outgoing], **kw: Any
) -> Dispatcher:
    async def publish(records: Sequence[Outgoing]) -> None:
        letters.extend(records)

    async def pool_of() -> asyncpg.Pool:
        return pool

    return Dispatcher(
        pool_of,
        {"scripted": channel},
        kw.pop("policy", RetryPolicy(3)),
        publish,
        owner=kw.pop("owner", "rounds-test"),
        store=STORE,
        sleep=no_sleep,
        tenants=frozenset({tenant}),
        **kw,
    )


async def log_of(conn: asyncpg.Connection, tenant: str) -> dict[str, list[str]]:
    """Each notification's attempts' statuses, in order."""
    found: dict[str, list[str]] = {}
    for r in await STORE.delivery_log(conn, tenant):
        found.setdefault(str(r.notification_id), []).append(r.status)
    return found


async def statuses(conn: asyncpg.Connection, tenant: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT notification_id, status FROM notification.notifications WHERE tenant_id = $1", tenant
    )
    return {str(r["notification_id"]): r["status"] for r in rows}


async def test_a_failing_destination_beside_a_healthy_one_and_a_rejected_job_inside_a_round(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    channel = Scripted()
    letters: list[Outgoing] = []
    healthy = await queue(ledger, tenant, "https://healthy.example/hook", 6)
    dead = await queue(ledger, tenant, "https://dead.example/hook", 3, first=100)
    # The healthy destination refuses its third notification (a 4xx: not retried) and answers its fifth
    # only at the second attempt; the dead one fails every attempt.
    channel.script[("https://healthy.example/hook", healthy[2])] = ["rejected"]
    channel.script[("https://healthy.example/hook", healthy[4])] = ["retry"]
    for nid in dead:
        channel.script[("https://dead.example/hook", nid)] = ["retry"] * 10

    d = dispatcher(pool, channel, tenant, letters)
    assert await d.poll() == 2
    await d.idle()

    log = await log_of(ledger, tenant)
    # Healthy: one delivered attempt each, the refused one failed once and dead-lettered, the retried one
    # delivered at its second attempt; each sent in queue order, the retried one before the ones after it.
    for n, nid in enumerate(healthy):
        expected = {2: ["failed"], 4: ["failed", "delivered"]}.get(n, ["delivered"])
        assert log[nid] == expected, (n, log[nid])
    sent = [nid for target, nid in channel.order if target == "https://healthy.example/hook"]
    assert sent == [*healthy[:5], healthy[4], healthy[5]]
    # Dead: three failed attempts each (the retry limit), then the dead-letter topic; in order.
    assert [log[nid] for nid in dead] == [["failed"] * 3] * 3
    dead_sent = [nid for target, nid in channel.order if target == "https://dead.example/hook"]
    assert dead_sent == [dead[0]] * 3 + [dead[1]] * 3 + [dead[2]] * 3
    given_up = {dict(letter.headers)["source_offset"] for letter in letters}
    assert given_up == {b"2", b"100", b"101", b"102"}
    assert all(dict(letter.headers)["reason"] == b"delivery_gave_up" for letter in letters)
    assert all(letter.topic == "remit.notifications.dlt" for letter in letters)

    status = await statuses(ledger, tenant)
    assert [status[nid] for nid in healthy] == ["delivered", "delivered", "failed", "delivered"] + [
        "delivered"
    ] * 2
    assert {status[nid] for nid in dead} == {"failed"}
    assert not await ledger.fetch("SELECT 1 FROM notification.delivery_queue WHERE tenant_id = $1", tenant)
    assert not await ledger.fetch(
        "SELECT 1 FROM notification.deliveries WHERE tenant_id = $1 AND status = 'sending'", tenant
    )


async def test_a_crash_between_the_sends_and_the_record_resends_the_round_once_and_logs_one_delivery(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    target = "https://crash.example/hook"
    ids = await queue(ledger, tenant, target, 6)
    channel = Scripted()
    channel.hold = ids[2]  # the worker dies with the third request in flight
    letters: list[Outgoing] = []
    first = dispatcher(pool, channel, tenant, letters)
    assert await first.poll() == 1
    for _ in range(500):
        if channel.calls[(target, ids[2])]:
            break
        await asyncio.sleep(0.01)
    await first.stop()  # the round's 'sending' rows are committed; its outcomes never will be
    in_doubt = await ledger.fetch(
        "SELECT notification_id FROM notification.deliveries WHERE tenant_id = $1 AND status = 'sending'",
        tenant,
    )
    assert {str(r["notification_id"]) for r in in_doubt} == set(ids)

    channel.hold = None
    again = dispatcher(pool, channel, tenant, letters)  # the same worker, restarted: takes its leases back
    assert await again.poll() == 1
    await again.idle()

    log = await log_of(ledger, tenant)
    # Every notification has exactly one delivered attempt; the first round's rows stay 'sending', the log's
    # record that the receiver may have seen the first two and the third twice (it dedupes on the id).
    assert {nid: log[nid] for nid in ids} == {nid: ["sending", "delivered"] for nid in ids}
    assert [channel.calls[(target, nid)] for nid in ids] == [2, 2, 2, 1, 1, 1]
    assert set((await statuses(ledger, tenant)).values()) == {"delivered"}
    assert not await ledger.fetch("SELECT 1 FROM notification.delivery_queue WHERE tenant_id = $1", tenant)
    assert letters == []

    # A third start (a replay, a restart) finds everything logged: nothing is sent again.
    calls = sum(channel.calls.values())
    await ledger.execute(
        """INSERT INTO notification.delivery_queue (tenant_id, notification_id, channel, target, body, subject,
               text, source_topic, source_partition, source_offset)
           SELECT $1, n, 'scripted', $2, '\\x7b7d', 's', 't', 'remit.notifications.v1', 0, 0
             FROM unnest($3::uuid[]) AS n""",
        tenant,
        target,
        [UUID(nid) for nid in ids],
    )
    third = dispatcher(pool, channel, tenant, letters)
    await third.poll()
    await third.idle()
    assert sum(channel.calls.values()) == calls
    assert {nid: log[nid] for nid in ids} == await log_of(ledger, tenant)


async def test_a_round_costs_the_same_statements_for_2_jobs_as_for_40(stack: Stack, tenant: str) -> None:
    statements: list[str] = []

    def count(query: Any) -> None:
        if "notification." in query.query:  # not asyncpg's own type introspection of a new connection
            statements.append(" ".join(query.query.split())[:60])

    async def logged(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(count)

    counted: dict[int, list[str]] = {}
    for size in (2, 40):
        who = f"{tenant}-{size}"
        conn = await asyncpg.connect(stack.postgres.dsn)
        try:
            await queue(conn, who, f"https://{size}.example/hook", size)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            stack.postgres.dsn, min_size=1, max_size=1, init=logged, reset=db.keep_session
        )
        try:
            channel, letters = Scripted(), list[Outgoing]()
            d = dispatcher(pool, channel, who, letters, batch=50)
            statements.clear()
            await d.poll()
            await d.idle()
            await asyncio.sleep(0.05)  # query loggers are called soon after, not during
            counted[size] = list(statements)
            assert sum(channel.calls.values()) == size
        finally:
            await pool.close()
    print(f"a round of 2 and of 40: {counted}")
    assert len(counted[2]) == len(counted[40]), counted
    # take back own leases, find destinations, lease, log check + 'sending', record, statuses, lease (empty)
    assert len(counted[40]) == 7, counted[40]


async def test_a_wake_drains_the_destinations_it_names_without_a_poll(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    target = "https://woken.example/hook"
    ids = await queue(ledger, tenant, target, 3)
    channel, letters = Scripted(), list[Outgoing]()
    d = dispatcher(pool, channel, tenant, letters)
    d.wake({("scripted", target)})  # what deliver's commit does; no poll runs in this test
    assert d.busy == 1
    d.wake({("scripted", target)})  # a second wake while it drains starts nothing more
    assert d.busy == 1
    await d.idle()
    assert [nid for _, nid in channel.order] == ids
    assert set((await statuses(ledger, tenant)).values()) == {"delivered"}


async def test_a_notification_sent_to_two_destinations_at_once_ends_delivered(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    first, second = "https://pm.example/hook", "https://accounting.example/hook"
    ids = await queue(ledger, tenant, first, 10)
    jobs = []
    for n, nid in enumerate(ids):  # the same notifications, routed to a second destination as well
        body = f'{{"notification_id": "{nid}"}}'.encode()
        out = Outbound(nid, tenant, second, body, "[offsetstream info] offset applied", "text\n")
        jobs.append(("scripted", out, Incoming(NOTIFICATIONS.name, 0, n, tenant.encode(), body)))
    await queue_deliveries(ledger, jobs)
    channel, letters = Scripted(), list[Outgoing]()
    d = dispatcher(pool, channel, tenant, letters)
    assert await d.poll() == 2  # both destinations drained at the same time, finishing together
    await d.idle()
    assert sorted(channel.calls.values()) == [1] * 20
    assert set((await statuses(ledger, tenant)).values()) == {"delivered"}


class FailingRecord(NotificationStore):
    """The store, except that the first ``failures`` writes of a round's record fail as a dropped connection
    does (a PostgreSQL failover, or the pool the stage reset under another error)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def finish_round(self, conn: Any, round_: Any) -> int:
        if self.failures:
            self.failures -= 1
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await super().finish_round(conn, round_)


async def test_a_round_whose_record_fails_transiently_is_recorded_not_sent_again(
    ledger: asyncpg.Connection, pool: asyncpg.Pool, tenant: str
) -> None:
    """The requests of a round are out before its record is written: a record that fails must be written
    again, not abandoned with its jobs leased (they would all be sent a second time when the lease ran out),
    and a give-up is dead-lettered before its queue row goes."""
    channel = Scripted()
    letters: list[Outgoing] = []
    target = "https://flaky-db.example/hook"
    ids = await queue(ledger, tenant, target, 5)
    channel.script[(target, ids[1])] = ["rejected"]
    d = dispatcher(pool, channel, tenant, letters)
    d.store = FailingRecord(failures=2)
    assert await d.poll() == 1
    await d.idle()

    assert all(channel.calls[(target, nid)] == 1 for nid in ids), channel.calls
    log = await log_of(ledger, tenant)
    assert log == {nid: ["failed" if nid == ids[1] else "delivered"] for nid in ids}
    assert await statuses(ledger, tenant) == {nid: "failed" if nid == ids[1] else "delivered" for nid in ids}
    assert [dict(letter.headers)["reason"] for letter in letters] == [b"delivery_gave_up"]
    left = await ledger.fetchval(
        "SELECT count(*) FROM notification.delivery_queue WHERE tenant_id = $1", tenant
    )
    assert left == 0
