"""Delivering notifications: a durable queue per destination, drained concurrently in rounds, every attempt
logged, at most one delivered attempt per notification and destination.

Queue and dispatcher (issue 16: a slow or dead receiver delays only its own tenant). The consumer does not call
receivers: :func:`queue_deliveries` writes one row per notification and immediate destination into
``notification.delivery_queue`` in the consumer's transaction, and after the commit wakes the
:class:`Dispatcher` with the destinations it filled (:meth:`Dispatcher.wake`); a slower safety poll
(``notification_dispatch_seconds``) finds what no wake announced (expired leases, a restart). The dispatcher
runs one drain task per destination (channel + target), up to ``notification_delivery_concurrency`` at a
time. So each destination is its own bounded queue (one request in flight, in order; the rest wait in the
table, not in memory), bounded in time by the connect/read timeouts and the give-up limit, and a receiver that
answers in 12 s holds back its own rows only. Leases let several workers share the table; a restarted worker
takes back its own at once, others' when they expire.

A drain task works its destination in rounds of up to ``notification_delivery_batch`` jobs, four statements
a round whatever its size (issue #18: they were six a delivery, each through the pool):

1. lease the destination's oldest jobs (one ``UPDATE … RETURNING``);
2. check the delivery log and log every job not yet delivered as ``sending`` (one ``INSERT … SELECT … WHERE
   NOT EXISTS``, autocommitted, so every attempt is on record before it leaves); one already delivered, whatever
   replay or restart brought it back, is done without a request;
3. send them one at a time in queue order;
4. record every outcome (``delivered``/``failed``, code, latency), withdraw the ``sending`` rows of jobs the
   round did not reach, delete the finished jobs, mark what gave up ``failed`` (one statement,
   ``NotificationStore.finish_round``); what gave up is dead-lettered (``delivery_gave_up``) before;
5. mark the delivered notifications ``delivered`` once no destination of theirs is queued (one statement,
   after 4 has committed, so two destinations finishing together cannot both miss it).

A failed attempt that will be retried ends its round: the jobs after it wait, in order, for its back-off
(exponential with jitter), and the destination is then probed one job at a time until it answers. After
``max_attempts`` failed attempts, or one not worth retrying, the job gives up and its round goes on.

Residual window, stated honestly: a crash after a receiver accepted a request (2xx) and before step 4 commits
leaves its ``sending`` row, and the restarted worker sends it again — at-least-once. The receiver dedupes on
the ``X-Offsetstream-Delivery`` id (e-mail: ``Message-ID``); only it can close that window. A round stops
sending once it has run ``round_seconds`` (0.25 s), so the window is at most that plus one request, and the
requests it can hold are those of one round of one destination; a ``sending`` row is the log's record that a
resend may have been a duplicate (a crash also leaves ``sending`` the rows of the round's jobs not reached).

:func:`deliver_once` is the same sequence for one notification and destination, each step its own statement
(tools and tests).
"""

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from services.notification import domain, metrics
from services.notification.channels import NotificationChannel, Outbound, Outcome
from services.notification.rows import AttemptOutcome, AttemptStarted, RoundOutcome
from services.notification.store import NotificationStore
from shared import telemetry
from shared.batches import dead_letter_message
from shared.db import unnest_columns
from shared.failures import is_transient
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
        outcome, latency_ms = await attempt_once(channel, outbound)
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


async def attempt_once(channel: NotificationChannel, outbound: Outbound) -> tuple[Outcome, float]:
    """One request through a channel plugin, timed; a plugin that raises is isolated (a failed attempt that
    is retried, then the DLT), never a crash of the dispatcher."""
    started = time.perf_counter()
    try:
        outcome = await channel.send(outbound)
    except Exception as exc:
        log.warning(
            "channel %s raised %s for notification %s",
            channel.name,
            type(exc).__name__,
            outbound.notification_id,
        )
        outcome = Outcome("retry", None, f"plugin raised {type(exc).__name__}")
    latency_ms = (time.perf_counter() - started) * 1000
    metrics.DELIVERY_SECONDS.labels(channel.name).observe(latency_ms / 1000)
    return outcome, latency_ms


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
        *unnest_columns(11, rows),
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
T = TypeVar("T")
PoolOf = Callable[[], Awaitable[asyncpg.Pool]]
Destination = tuple[str, str]
"""(channel, target): one queue of its own, drained one request at a time, in order."""


@dataclass
class _Round:
    """What one round of one destination did, in order, before it is written (``finish_round``)."""

    attempts: list[AttemptOutcome] = field(default_factory=list)
    finished: list[Job] = field(default_factory=list)
    gave_up: list[tuple[Job, str]] = field(default_factory=list)
    delivered: list[Job] = field(default_factory=list)
    unsent: list[AttemptStarted] = field(default_factory=list)
    retry_in: float | None = None
    """Back-off before the next round, after a failed attempt that will be retried."""


@dataclass
class Dispatcher:
    """Drains ``notification.delivery_queue``: one task per destination, at most ``concurrency`` at a time,
    each working its destination's queue in rounds of up to ``batch`` jobs with four statements a round."""

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
    batch: int = 20
    round_seconds: float = 0.25
    """A round stops sending once it has run this long: the outcomes of a round are committed together, so
    this (plus one request) bounds how many sent requests a crash can leave unlogged (``sending``)."""
    _tasks: dict[Destination, "asyncio.Task[None]"] = field(default_factory=dict)
    _more: set[Destination] = field(default_factory=set)
    _failures: dict[int, int] = field(default_factory=dict)
    _started: bool = False
    _stopped: bool = False

    @property
    def busy(self) -> int:
        """Destinations being drained now."""
        return len(self._tasks)

    def wake(self, destinations: Collection[Destination]) -> None:
        """Deliveries to these destinations were just committed to the queue (``Notifier.deliver``, after its
        commit): start their drain tasks now instead of waiting for the next poll. A destination already being
        drained is told to look again before its task ends, so a job committed while its last lease ran is
        not left for the safety poll; one beyond the concurrency bound waits for a free task and the poll."""
        if self._stopped:  # the worker is stopping: what is queued waits for its restart
            return
        for destination in destinations:
            if destination in self._tasks:
                self._more.add(destination)
            elif len(self._tasks) < self.concurrency:
                self._start(destination)
            else:
                self._more.add(destination)

    async def poll(self) -> int:
        """Start a drain task for every destination with rows nobody holds (within the bound); returns how many
        were started. The safety net under :meth:`wake` (one indexed query, every
        ``notification_dispatch_seconds``): rows another worker's expired lease left, this worker's own rows
        after a restart, destinations that waited for a free task, and (once its lease has run out) the
        queue of a drain task that ended on an error it could not retry."""
        pool = await self.pool_of()
        if (
            not self._started
        ):  # leases of this worker's earlier runs (same host and worker id): take them back
            await pool.execute(
                """UPDATE notification.delivery_queue SET leased_by = NULL, leased_until = NULL
                    WHERE starts_with(leased_by, $1) OR leased_by = $2""",
                self.owner.rpartition(":")[0] + ":",
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
            self._start(destination)
            started += 1
        return started

    @property
    def _scope(self) -> list[str] | None:
        return None if self.tenants is None else sorted(self.tenants)

    def _start(self, destination: Destination) -> None:
        self._more.discard(destination)
        self._tasks[destination] = asyncio.create_task(self._drain(*destination))

    async def idle(self) -> None:
        """Wait until every drain task has ended (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the drain tasks; their leased rows are taken back when this worker starts again. No wake
        starts another afterwards."""
        self._stopped = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, channel: str, target: str) -> None:
        destination = (channel, target)
        size = self.batch
        try:
            while True:
                self._more.discard(destination)
                jobs = await self._lease(channel, target, size)
                if not jobs:
                    if destination in self._more:
                        continue
                    break
                done = await self._round(channel, target, jobs)
                # After a failure the destination is probed one job at a time until it answers again; after a
                # round cut short by its time budget (a slow receiver) the next leases no more than it sent.
                if done.retry_in is not None:
                    size = 1
                    await self.sleep(done.retry_in)
                elif done.unsent:
                    size = max(1, len(jobs) - len(done.unsent))
                else:
                    size = self.batch
        except Exception:  # the database went away: the rows stay queued; the next poll starts over
            self._more.discard(destination)
            log.exception(
                "delivery to a %s destination stopped; its queue is resumed on the next poll", channel
            )
        finally:
            self._tasks.pop(destination, None)
            self._refill()

    def _refill(self) -> None:
        """A task ended: start one for a destination that was woken while every task was taken."""
        waiting = [d for d in self._more if d not in self._tasks]
        if waiting and len(self._tasks) < self.concurrency:
            self.wake(waiting[: self.concurrency - len(self._tasks)])

    async def _lease(self, channel: str, target: str, size: int) -> list[Job]:
        pool = await self.pool_of()
        rows = await self.store.lease_jobs(
            pool, channel, target, self.owner, self.lease_seconds, self._scope, size
        )
        return [Job.of(row) for row in rows]

    async def _round(self, channel: str, target: str, jobs: Sequence[Job]) -> _Round:
        """One round of a destination: the log check and every 'sending' row in one statement (committed
        before anything leaves), the requests one at a time in queue order, then every outcome in one
        statement. A failed attempt that will be retried ends the round (the jobs after it wait, in order,
        for its back-off); one that gives up is dead-lettered and the round goes on."""
        pool = await self.pool_of()
        done = _Round()
        plugin = self.channels.get(channel)
        if plugin is None:
            done.gave_up = [(job, f"channel {channel!r} is not installed") for job in jobs]
            done.finished = list(jobs)
            await self._finish(pool, channel, done)
            return done
        keys = [(job.outbound.tenant_id, UUID(job.outbound.notification_id)) for job in jobs]
        started = await self.store.begin_attempts(pool, channel, target, keys)
        began = time.monotonic()
        sending = [(job, started.get(key)) for job, key in zip(jobs, keys, strict=True)]
        for job, attempt in sending:
            if attempt is None:  # its one delivered attempt is in the log: never again
                metrics.DELIVERIES.labels(channel, "already_delivered").inc()
                done.finished.append(job)
                done.delivered.append(job)
                continue
            if done.retry_in is not None or (done.attempts and time.monotonic() - began > self.round_seconds):
                done.unsent.append(attempt)
                continue
            outcome, latency_ms = await attempt_once(plugin, job.outbound)
            ok = outcome.status == "delivered"
            done.attempts.append(
                AttemptOutcome(
                    attempt.row_id,
                    outcome.status if ok else "failed",
                    outcome.code,
                    latency_ms,
                    outcome.error,
                )
            )
            if ok:
                done.finished.append(job)
                done.delivered.append(job)
                self._failures.pop(job.job_id, None)
                continue
            metrics.DELIVERIES.labels(channel, "failed").inc()
            failures = self._failures.get(job.job_id, 0) + 1
            if outcome.status == "rejected" or failures >= self.policy.max_attempts:
                self._failures.pop(job.job_id, None)
                metrics.DELIVERIES.labels(channel, "gave_up").inc()
                done.finished.append(job)
                done.gave_up.append((job, f"{channel} gave up after {failures} attempts"))
            else:
                self._failures[job.job_id] = failures
                done.retry_in = domain.backoff_delay(failures, self.policy.base_delay, self.policy.max_delay)
        beaten = await self._finish(pool, channel, done)
        delivered = sum(1 for a in done.attempts if a.status == "delivered")
        metrics.DELIVERIES.labels(channel, "delivered").inc(delivered - beaten)
        if beaten:
            metrics.DELIVERIES.labels(channel, "already_delivered").inc(beaten)
        return done

    async def _finish(self, pool: asyncpg.Pool, channel: str, done: _Round) -> int:
        """Write the round (one statement) and the delivered notifications' status (another), each retried until
        it commits; then dead-letter what gave up and only after that take its queue rows away (nothing is
        dropped unannounced). Returns how many 'delivered' outcomes another worker's attempt beat.

        The record comes first and is retried because the requests have already been sent: a round left
        unrecorded (a PostgreSQL failover, the stage's pool reset under a transient error, a broker outage
        while dead letters are published) would keep its jobs leased and be sent again, whole, when the lease
        ran out. Retrying keeps re-sends to what a crash of the process leaves (``services/notification/
        README.md``, "Exactly once")."""
        given_up = {job.job_id for job, _ in done.gave_up}
        outcome = RoundOutcome(
            attempts=tuple(done.attempts),
            withdrawn=tuple(a.row_id for a in done.unsent),
            finished_jobs=tuple(job.job_id for job in done.finished if job.job_id not in given_up),
        )

        async def record(pool: asyncpg.Pool) -> int:
            try:
                return await self.store.finish_round(pool, outcome)
            except asyncpg.UniqueViolationError:  # another worker logged a delivery between our check and now
                beaten = 0
                for a in done.attempts:
                    ok = await self.store.finish_attempt(
                        pool, a.row_id, a.status, a.code, a.latency_ms, a.error
                    )
                    beaten += not ok
                await self.store.finish_round(pool, replace(outcome, attempts=()))
                return beaten

        beaten = await self._until_recorded(record, pool)
        delivered = [_key(job) for job in done.delivered if job.job_id not in given_up]
        await self._until_recorded(lambda p: self.store.mark_delivered(p, delivered))
        if done.gave_up:
            letters = [
                dead_letter_message(
                    SERVICE,
                    job.source,
                    "delivery_gave_up",
                    why,
                    {"notification_id": job.outbound.notification_id, "channel": channel},
                )
                for job, why in done.gave_up
            ]
            telemetry.DEAD_LETTERS.labels(SERVICE, "delivery_gave_up").inc(len(letters))
            await self.publish(letters)
            gave_up = RoundOutcome(
                finished_jobs=tuple(sorted(given_up)), gave_up=tuple(_key(job) for job, _ in done.gave_up)
            )
            await self._until_recorded(lambda p: self.store.finish_round(p, gave_up))
        return beaten

    async def _until_recorded(
        self, write: Callable[[asyncpg.Pool], Awaitable[T]], pool: asyncpg.Pool | None = None
    ) -> T:
        """``write`` committed, retried on transient failures with the stage's current pool each time (a
        failover, or the pool the stage reset under another error); anything else, or stopping, propagates."""
        delay = 0.2
        while True:
            try:
                return await write(pool or await self.pool_of())
            except Exception as exc:
                if self._stopped or not is_transient(exc):
                    raise
                log.warning("delivery record: transient %s, retrying in %.1fs", type(exc).__name__, delay)
                pool = None
                await self.sleep(delay)
                delay = min(delay * 2, 10.0)


def _key(job: Job) -> tuple[str, UUID]:
    return job.outbound.tenant_id, UUID(job.outbound.notification_id)


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
        # The process id too: the queue renews rows its owner already holds, so two processes sharing a name
        # (two workers left at the default worker id on one host) would lease and send the same jobs.
        owner=f"{socket.gethostname()}:{s.worker_id}:{os.getpid()}",
        store=store,
        concurrency=s.notification_delivery_concurrency,
        batch=s.notification_delivery_batch,
        lease_seconds=lease_seconds(
            policy, s.notification_connect_timeout_seconds, s.notification_timeout_seconds
        ),
    )
