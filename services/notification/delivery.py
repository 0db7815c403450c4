"""Delivering notifications: a durable queue per destination, drained concurrently, and the attempt loop that
delivers one notification to one destination at most once per success, with every attempt logged.

Queue and dispatcher (issue 16: a slow or dead receiver delays only its own tenant). The consumer does not call
receivers: :func:`queue_delivery` writes one row per notification and immediate destination into
``notification.delivery_queue`` in the consumer's transaction, and the batch commits at once. The
:class:`Dispatcher` (a timer every ``notification_dispatch_seconds``) starts one drain task per destination
(channel + target) with queued rows, up to ``notification_delivery_concurrency`` at a time; each task leases
its destination's oldest row, runs :func:`deliver_once`, then dead-letters it (``delivery_gave_up``) if it gave
up, sets the notification's status, and deletes the row. So each destination is its own bounded queue (one
request in flight, in order; the rest wait in the table, not in memory), bounded in time by the connect/read
timeouts and the give-up limit, and a receiver that answers in 12 s holds back its own rows only. Leases let
several workers share the table; a restarted worker takes back its own at once, others' when they expire.

The sequence per destination is: (1) look in the delivery log — already delivered means done, whatever
replay or restart brought the notification back; (2) insert the attempt as ``sending`` and COMMIT; (3) make the
attempt; (4) update the row to ``delivered``/``failed`` with code and latency and COMMIT; (5) on a transient
failure wait (exponential back-off with jitter) and go to (2), up to the give-up limit.

Each step is its own autocommit statement on a connection of its own, not part of the consumer's transaction,
so the log is durable the moment an attempt ends rather than when the whole message is done.

Residual window, stated honestly: a crash after the receiver accepted the request (2xx) and before step (4)
commits leaves a ``sending`` row, and the restarted worker sends again — at-least-once. The receiver dedupes on
the ``X-Offsetstream-Delivery`` id (e-mail: ``Message-ID``); only it can close that window. Its length is the
response's trip back plus one single-row UPDATE commit (milliseconds); a ``sending`` row is the log's record
that a resend may have been a duplicate.
"""

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from services.notification import domain, metrics
from services.notification.channels import NotificationChannel, Outbound, Outcome
from services.notification.store import NotificationStore, columns
from shared import telemetry
from shared.batches import dead_letter_message
from shared.messages import Incoming, Outgoing
from shared.stream import Stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Give-up limit and back-off of one destination's attempts."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0


async def deliver_once(
    store: NotificationStore,
    conn: asyncpg.Connection | asyncpg.Pool,
    channel: NotificationChannel,
    outbound: Outbound,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> str:
    """Deliver to one destination; returns ``delivered``, ``already_delivered`` or ``gave_up``. ``conn`` may be
    a pool: each statement then takes a connection only while it runs, never across a request or a back-off."""
    nid, tenant = UUID(outbound.notification_id), outbound.tenant_id
    name, target = channel.name, outbound.target
    if await store.delivered(conn, tenant, nid, name, target):
        metrics.DELIVERIES.labels(name, "already_delivered").inc()
        return "already_delivered"
    for number in range(1, policy.max_attempts + 1):
        row_id = (await store.begin_attempt(conn, tenant, nid, name, target)).row_id
        started = time.perf_counter()
        try:
            outcome = await channel.send(outbound)
        except Exception as exc:  # a plugin that raises is isolated: a failed attempt, then the DLT
            log.warning("channel %s raised %s for notification %s", name, type(exc).__name__, nid)
            outcome = Outcome("retry", None, f"plugin raised {type(exc).__name__}")
        latency_ms = (time.perf_counter() - started) * 1000
        metrics.DELIVERY_SECONDS.labels(name).observe(latency_ms / 1000)
        ok = outcome.status == "delivered"
        logged = await store.finish_attempt(
            conn, row_id, "delivered" if ok else "failed", outcome.code, latency_ms, outcome.error
        )
        if ok:
            metrics.DELIVERIES.labels(name, "delivered" if logged else "already_delivered").inc()
            return "delivered"
        metrics.DELIVERIES.labels(name, "failed").inc()
        if outcome.status == "rejected":
            break
        if number < policy.max_attempts:
            await sleep(domain.backoff_delay(number, policy.base_delay, policy.max_delay, rng))
    metrics.DELIVERIES.labels(name, "gave_up").inc()
    return "gave_up"


# --- the queue and its dispatcher ---------------------------------------------------------------------------

SERVICE = "notification"


async def queue_deliveries(conn: asyncpg.Connection, jobs: Sequence[tuple[str, Outbound, Incoming]]) -> None:
    """Owe deliveries (channel, what to send, the notification record it came from), in the caller's
    transaction and one statement for the batch; one already queued is not queued again."""
    if not jobs:
        return
    rows = (
        (
            outbound.tenant_id,
            UUID(outbound.notification_id),
            channel,
            outbound.target,
            outbound.body,
            outbound.subject,
            outbound.text,
            source.topic,
            source.partition,
            source.offset,
            source.key,
        )
        for channel, outbound, source in jobs
    )
    await conn.execute(
        """INSERT INTO notification.delivery_queue (tenant_id, notification_id, channel, target, body, subject,
               text, source_topic, source_partition, source_offset, source_key)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bytea[], $6::text[],
               $7::text[], $8::text[], $9::int[], $10::bigint[], $11::bytea[])
           ON CONFLICT DO NOTHING""",
        *columns(11, rows),
    )


@dataclass(frozen=True)
class Job:
    """One queued delivery."""

    job_id: int
    channel: str
    outbound: Outbound
    source: Incoming

    @classmethod
    def of(cls, row: Any) -> "Job":
        """From a ``notification.delivery_queue`` row."""
        outbound = Outbound(
            notification_id=str(row["notification_id"]),
            tenant_id=row["tenant_id"],
            target=row["target"],
            body=bytes(row["body"]),
            subject=row["subject"],
            text=row["text"],
        )
        key = row["source_key"]
        source = Incoming(
            row["source_topic"],
            row["source_partition"],
            row["source_offset"],
            None if key is None else bytes(key),
            outbound.body,
        )
        return cls(int(row["job_id"]), row["channel"], outbound, source)


Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
PoolOf = Callable[[], Awaitable[asyncpg.Pool]]


@dataclass
class Dispatcher:
    """Drains ``notification.delivery_queue``: one task per destination, at most ``concurrency`` at a time."""

    pool_of: PoolOf
    channels: Mapping[str, NotificationChannel]
    policy: RetryPolicy
    publish: Publish
    owner: str
    store: NotificationStore
    concurrency: int = 64
    lease_seconds: float = 300.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    tenants: frozenset[str] | None = None
    """Only these tenants' rows (None: all) — a worker dedicated to some tenants, or a test's own rows."""
    _tasks: dict[tuple[str, str], "asyncio.Task[None]"] = field(default_factory=dict)
    _started: bool = False

    @property
    def busy(self) -> int:
        """Destinations being drained now."""
        return len(self._tasks)

    async def poll(self) -> int:
        """Start a drain task for every destination with rows nobody holds (within the bound); returns how many
        were started. Cheap enough to run every 0.1 s: one indexed query."""
        pool = await self.pool_of()
        if not self._started:  # this worker's leases from before a restart: its own, take them back now
            await pool.execute(
                "UPDATE notification.delivery_queue SET leased_by = NULL, leased_until = NULL WHERE leased_by = $1",
                self.owner,
            )
            self._started = True
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        rows = await pool.fetch(
            """SELECT DISTINCT channel, target FROM notification.delivery_queue
                WHERE (leased_until IS NULL OR leased_until < now())
                  AND ($1::text[] IS NULL OR tenant_id = ANY($1::text[]))""",
            self._scope,
        )
        started = 0
        for row in rows:
            destination = (row["channel"], row["target"])
            if destination in self._tasks or started >= free:
                continue
            self._tasks[destination] = asyncio.create_task(self._drain(*destination))
            started += 1
        return started

    @property
    def _scope(self) -> list[str] | None:
        return None if self.tenants is None else sorted(self.tenants)

    async def idle(self) -> None:
        """Wait until every drain task has ended (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the drain tasks; their leased rows are taken back when this worker starts again."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, channel: str, target: str) -> None:
        try:
            while (job := await self._claim(channel, target)) is not None:
                await self._deliver(job)
        except Exception:  # the database went away: the rows stay queued; the next poll starts over
            log.exception(
                "delivery to a %s destination stopped; its queue is resumed on the next poll", channel
            )
        finally:
            self._tasks.pop((channel, target), None)

    async def _claim(self, channel: str, target: str) -> Job | None:
        pool = await self.pool_of()
        row = await pool.fetchrow(
            """UPDATE notification.delivery_queue
                  SET leased_by = $3, leased_until = now() + make_interval(secs => $4)
                WHERE job_id = (SELECT job_id FROM notification.delivery_queue
                                 WHERE channel = $1 AND target = $2
                                   AND (leased_until IS NULL OR leased_until < now())
                                   AND ($5::text[] IS NULL OR tenant_id = ANY($5::text[]))
                                 ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING *""",
            channel,
            target,
            self.owner,
            self.lease_seconds,
            self._scope,
        )
        return None if row is None else Job.of(row)

    async def _deliver(self, job: Job) -> None:
        pool = await self.pool_of()
        out, nid = job.outbound, UUID(job.outbound.notification_id)
        plugin = self.channels.get(job.channel)
        if plugin is None:
            result, why = "gave_up", f"channel {job.channel!r} is not installed"
        else:
            result = await deliver_once(self.store, pool, plugin, out, self.policy, self.sleep)
            why = f"{job.channel} gave up after {self.policy.max_attempts} attempts"
        if result == "gave_up":
            await self.store.set_status(pool, out.tenant_id, nid, "failed")
            telemetry.DEAD_LETTERS.labels(SERVICE, "delivery_gave_up").inc()
            extra = {"notification_id": out.notification_id, "channel": job.channel}
            await self.publish([dead_letter_message(SERVICE, job.source, "delivery_gave_up", why, extra)])
        await pool.execute("DELETE FROM notification.delivery_queue WHERE job_id = $1", job.job_id)
        if result != "gave_up":  # delivered once every destination is; a failed one keeps 'failed'
            await pool.execute(
                """UPDATE notification.notifications n SET status = 'delivered'
                    WHERE n.tenant_id = $1 AND n.notification_id = $2 AND n.status = 'queued'
                      AND NOT EXISTS (SELECT 1 FROM notification.delivery_queue q
                                       WHERE q.tenant_id = $1 AND q.notification_id = $2)""",
                out.tenant_id,
                nid,
            )


async def drain(
    pool: asyncpg.Pool,
    channels: Mapping[str, NotificationChannel],
    tenants: frozenset[str] | None = None,
    policy: RetryPolicy | None = None,
) -> list[Outgoing]:
    """Deliver what is queued now, in this process, and wait for it (tests, tools); returns the dead letters
    that would have been published."""
    letters: list[Outgoing] = []

    async def keep(records: Sequence[Outgoing]) -> None:
        letters.extend(records)

    async def pool_of() -> asyncpg.Pool:
        return pool

    dispatcher = Dispatcher(
        pool_of,
        channels,
        policy or RetryPolicy(),
        keep,
        owner=f"drain-{socket.gethostname()}",
        store=NotificationStore(),
        tenants=tenants,
    )
    await dispatcher.poll()
    await dispatcher.idle()
    return letters


def lease_seconds(policy: RetryPolicy, connect_timeout: float, read_timeout: float) -> float:
    """Longer than the worst case of one delivery (every attempt timing out, every back-off at its longest), so
    a lease never expires under a worker that is still trying."""
    return policy.max_attempts * (connect_timeout + read_timeout + policy.max_delay) + 60.0


def dispatcher_for(
    stage: Stage, channels: Mapping[str, NotificationChannel], policy: RetryPolicy, store: NotificationStore
) -> Dispatcher:
    """The service's dispatcher: the stage's pool, its producer for dead letters (retried through broker
    outages), this worker's leases, and the settings' bound and timeouts."""
    s = stage.settings

    async def publish(records: Sequence[Outgoing]) -> None:
        await stage.retrying(lambda: stage.publish(records), broker_errors=True)

    return Dispatcher(
        stage.pool,
        channels,
        policy,
        publish,
        owner=f"{socket.gethostname()}:{s.worker_id}",
        store=store,
        concurrency=s.notification_delivery_concurrency,
        lease_seconds=lease_seconds(
            policy, s.notification_connect_timeout_seconds, s.notification_timeout_seconds
        ),
    )
