"""The stage runtime: one faust app per service, and the one way every stage processes its messages.

Messages are taken in batches (Faust ``take_events``: up to ``batch_max_messages``, waiting at most
``batch_max_wait_seconds``). Per batch: (1) find each message's idempotency id and claim them all in
``ops.processed_events``, (2) in ONE PostgreSQL transaction apply each new message's handler and record the
messages it produced, (3) commit, publish every output and wait once for the broker's acknowledgements, (4) let
Faust commit the offsets. A crash between (3) and (4) is healed on redelivery: step (1) finds the claims and
step (3) re-publishes the same bytes with the same deterministic ids. Claiming *before* the handler runs means
two workers that briefly hold the same partition during a rebalance can never both apply it. Bad input never
stops the stream: each message runs in a savepoint, the bad one is rolled back to it and goes to
``<topic>.dlt`` with the original bytes and a bounded reason, while the rest of the batch commits. Transient
failures (database or broker down, a deadlock between workers) roll the whole batch back and retry it with
backoff, because dead-lettering a valid remittance during a PostgreSQL restart would lose money from the ledger.

Why batches: one message per transaction and per ack wait costs ~6 ms of round trips and fsyncs, which capped
every agent near 150 messages/s (bench/README.md); a batch pays those once.
"""

import asyncio
import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import asyncpg
import faust
from aiokafka.errors import KafkaError
from faust.sensors.prometheus import setup_prometheus_sensors
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.topics import dlt_name
from shared import db, lag, telemetry
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, crash, cannot-connect-now: the server restarts
    asyncpg.exceptions.DeadlockDetectedError,  # two workers' batches locked rows in opposite orders
    asyncpg.exceptions.SerializationError,
)


class Rejected(Exception):
    """Input that can never be processed as it is. ``reason`` is a bounded label; ``message`` has no PHI."""

    def __init__(self, reason: str, message: str, location: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.location = location or {}


@dataclass(frozen=True)
class Incoming:
    """One consumed Kafka record, independent of Faust's types so handlers stay testable."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """A message to publish after the transaction commits."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def event(cls, topic: str, envelope: Envelope[Any]) -> "Outgoing":
        """An envelope keyed by its account, so one account's events stay ordered on one partition."""
        return cls(topic=topic, key=envelope.account_key, value=envelope.to_bytes())

    def to_record(self) -> dict[str, Any]:
        """JSON-safe form kept in ``ops.processed_events`` for re-publishing after a crash."""
        return {
            "topic": self.topic,
            "key": self.key,
            "value": base64.b64encode(self.value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in self.headers],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Outgoing":
        """Inverse of :meth:`to_record`."""
        return cls(
            topic=record["topic"],
            key=record["key"],
            value=base64.b64decode(record["value"]),
            headers=tuple((k, base64.b64decode(v)) for k, v in record["headers"]),
        )


@dataclass(frozen=True)
class Result:
    """What became of one input: the messages owed to the broker and the outcome label."""

    outputs: list[Outgoing]
    outcome: str  # applied | duplicate | dead_lettered


Handler = Callable[[asyncpg.Connection, Incoming], Awaitable[Sequence[Outgoing]]]
Replay = Handler
"""Rebuilds the outputs of an input already applied, from the input and the ledger, without writing anything."""
IdOf = Callable[[Incoming], str]


def envelope_event_id(incoming: Incoming) -> str:
    """The idempotency id of an envelope message: its deterministic ``event_id``."""
    try:
        event_id = json.loads(incoming.value)["event_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Rejected("invalid_message", "message is not an offsetstream envelope (no event_id)") from exc
    if not isinstance(event_id, str):
        raise Rejected("invalid_message", "event_id is not a string")
    return event_id


def safe_validation_message(exc: ValidationError) -> str:
    """A pydantic error summary without the offending input values (they may be PHI)."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)]
    return "; ".join(parts[:5])


class Stage:
    """A service's faust app plus the idempotent process/publish/dead-letter loop shared by all stages."""

    def __init__(
        self, service: str, settings: Settings | None = None, *, fetch_bytes: int = 1024 * 1024
    ) -> None:
        """``fetch_bytes`` bounds what the consumer fetches ahead per partition, which is most of a worker's
        memory under a backlog: 1 MiB holds hundreds of events; intake raises it to its largest file."""
        self.service = service
        self.settings = settings or get_settings()
        telemetry.setup_logging(self.settings.log_level)
        s = self.settings
        datadir = s.data_dir / "faust" / f"{service}-{s.worker_id}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            f"offsetstream-{service}",
            broker=f"kafka://{s.kafka_bootstrap}",
            store="memory://",
            value_serializer="raw",
            key_serializer="raw",
            web_bind=s.web_host,
            web_host=s.web_host,
            web_port=s.web_port(service),
            datadir=str(datadir),
            topic_partitions=s.topic_partitions,
            autodiscover=False,
            producer_max_request_size=16 * 1024 * 1024,
            consumer_max_fetch_size=fetch_bytes,
            broker_commit_every=100,
            broker_commit_interval=s.commit_interval_seconds,
        )
        setup_prometheus_sensors(self.app, name_prefix=f"faust_{service}")
        telemetry.declare_service(service)
        lag.watch(self)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self.subscriptions: list[tuple[tuple[str, ...], Handler]] = []

    async def pool(self) -> asyncpg.Pool:
        """The service's connection pool, created on first use (after the worker has started)."""
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await db.create_pool(self.settings)
            return self._pool

    def consume(
        self,
        topics: Sequence[str],
        handler: Handler,
        id_of: IdOf = envelope_event_id,
        *,
        batch: int | None = None,
        replay: Replay | None = None,
    ) -> None:
        """Register an agent that feeds every record of ``topics`` through :meth:`process_batch`.

        ``batch`` caps the messages per transaction below the setting: a stage whose handler has effects
        outside the database (a webhook call) keeps it small, since a crash repeats the whole batch's effects.
        ``replay``, for a stage whose outputs are large and can be rebuilt (intake: every claim of a file),
        stores no outputs with the claim and rebuilds them on redelivery instead."""
        channel = self.app.topic(*topics, key_serializer="raw", value_serializer="raw", allow_empty=True)
        size = min(batch or self.settings.batch_max_messages, self.settings.batch_max_messages)
        within = self.settings.batch_max_wait_seconds

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(size, within=within):
                batch = [incoming_of(event.message) for event in events]
                try:
                    await self.until_done(partial(self.process_batch, batch, handler, id_of, replay))
                except BaseException:
                    withhold_acks(events)
                    raise

        self.subscriptions.append((tuple(topics), handler))
        agent.__name__ = f"{self.service}_{'_'.join(t.split('.')[1] for t in topics)}".replace("-", "_")
        self.app.agent(channel, name=agent.__name__)(agent)

    def every(self, seconds: float, work: Callable[[], Awaitable[object]], name: str) -> None:
        """Run time-driven ``work`` every ``seconds`` on each worker: transient failures are retried, anything
        else is logged and tried again on the next tick (a timer must never take the worker down)."""

        async def tick() -> None:
            try:
                await self.retrying(work)
            except Exception:
                log.exception("%s: %s failed; will retry on the next tick", self.service, name)

        tick.__name__ = tick.__qualname__ = f"{self.service}_{name}"
        self.app.timer(interval=seconds)(tick)

    async def process_batch(
        self, batch: Sequence[Incoming], handler: Handler, id_of: IdOf, replay: Replay | None = None
    ) -> list[str]:
        """Apply a batch exactly once in effect, publish what it owes, and return each message's outcome."""
        service = self.service
        for topic, count in Counter(incoming.topic for incoming in batch).items():
            telemetry.MESSAGES_CONSUMED.labels(service, topic).inc(count)
        telemetry.IN_PROGRESS.labels(service).inc(len(batch))
        telemetry.BATCH_SIZE.labels(service).observe(len(batch))
        started = time.perf_counter()
        try:
            results = await self.retrying(lambda: self._apply(handler, batch, id_of, replay))
            for incoming, result in zip(batch, results, strict=True):
                if result.outcome == "dead_lettered":
                    self._count_dead_letter(incoming, result.outputs[0])
            outputs = [out for result in results for out in result.outputs]
            # Once the effects are committed (or inputs judged bad), their messages are owed to the broker.
            # Publishing retries until acknowledged and never dead-letters a committed effect.
            await self.retrying(lambda: self.publish(outputs), broker_errors=True)
        finally:
            telemetry.IN_PROGRESS.labels(service).dec(len(batch))
        per_message = (time.perf_counter() - started) / len(batch)
        for outcome, count in Counter(result.outcome for result in results).items():
            telemetry.MESSAGES_PROCESSED.labels(service, outcome).inc(count)
        histogram = telemetry.PROCESSING_SECONDS.labels(service)
        for _ in results:
            histogram.observe(per_message)
        telemetry.LAST_PROCESSED.labels(service).set(time.time())
        return [result.outcome for result in results]

    async def until_done(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run a batch until it completes. Handler failures are dead letters and transient ones are retried
        inside; anything still escaping is a fault of the stage itself (a bug, a schema out of date), and
        moving past the batch would skip its messages, so it is retried every few seconds, loudly, and the
        consumer lag shows the stall."""
        while True:
            try:
                await work()
                return
            except Exception:
                telemetry.TRANSIENT_RETRIES.labels(self.service).inc()
                log.exception("%s: a batch failed outside its handlers; retrying it in 5 s", self.service)
                await asyncio.sleep(5.0)

    async def _apply(
        self, handler: Handler, batch: Sequence[Incoming], id_of: IdOf, replay: Replay | None
    ) -> list[Result]:
        pool = await self.pool()
        async with pool.acquire() as conn:
            return await apply_batch(conn, self.service, handler, batch, id_of, replay=replay)

    async def retrying(self, action: Callable[[], Awaitable[T]], *, broker_errors: bool = False) -> T:
        """Run ``action`` until it succeeds through transient failures (database or network down; with
        ``broker_errors`` also any Kafka error, for publishing what is already owed)."""
        delay = 0.2
        transient = (*TRANSIENT_ERRORS, KafkaError) if broker_errors else TRANSIENT_ERRORS
        while True:
            try:
                return await action()
            except transient as exc:
                telemetry.TRANSIENT_RETRIES.labels(self.service).inc()
                log.warning("%s: transient %s, retrying in %.1fs", self.service, type(exc).__name__, delay)
                if isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError | OSError):
                    await self._reset_pool()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _reset_pool(self) -> None:
        async with self._pool_lock:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None

    async def publish(self, outputs: Sequence[Outgoing]) -> None:
        """Send every message, then wait until the broker has acknowledged all of them.

        Straight to the app's Kafka producer: the messages are bytes already, and Faust's channel layer
        (schemas, codecs, a future per message) cost more CPU than the rest of a typical handler."""
        if not outputs:
            return
        producer = await self.app.maybe_start_producer()
        pending = [
            await producer.send(out.topic, out.key.encode(), out.value, None, None, list(out.headers) or None)
            for out in outputs
        ]
        await asyncio.gather(*pending)
        for topic, count in Counter(out.topic for out in outputs).items():
            telemetry.MESSAGES_PRODUCED.labels(self.service, topic).inc(count)

    def _count_dead_letter(self, incoming: Incoming, record: Outgoing) -> None:
        headers = dict(record.headers)
        reason = headers.get("reason", b"").decode()
        telemetry.DEAD_LETTERS.labels(self.service, reason).inc()
        log.warning(
            "%s: dead-lettered %s[%d]@%d: %s (%s)",
            self.service,
            incoming.topic,
            incoming.partition,
            incoming.offset,
            reason,
            headers.get("error", b"").decode(),
        )


def withhold_acks(events: Sequence[Any]) -> None:
    """Keep the offsets of a batch that did not finish from ever being committed.

    Faust's ``take_events`` acknowledges the events it handed out when the loop leaves them, whatever happened
    to them, so a worker cancelled mid-batch (shutdown, crash of the agent) would commit offsets whose effects
    were never written, and those messages would be lost. Marking the messages as already acknowledged makes
    that later ack a no-op, so their offsets never become committable and the next owner of the partition
    receives them again (the claims in ``ops.processed_events`` make that redelivery harmless)."""
    for event in events:
        event.message.acked = True


def incoming_of(message: Any) -> Incoming:
    """Faust's consumed message as our own type."""
    return Incoming(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",
        headers={k: bytes(v or b"") for k, v in (message.headers or [])},
    )


async def apply_batch(
    conn: asyncpg.Connection,
    service: str,
    handler: Handler,
    batch: Sequence[Incoming],
    id_of: IdOf,
    *,
    replay: Replay | None = None,
) -> list[Result]:
    """Apply each input of ``batch`` in order, in one transaction.

    A new input's id is claimed in ``ops.processed_events`` before its handler runs and its outputs are stored
    with the claim; an input already claimed (a redelivery, or the same message twice in one batch) yields the
    recorded outputs instead (or, with ``replay``, the outputs rebuilt). An input the handler rejects is rolled
    back to its savepoint, unclaimed (so a DLT replay can re-drive it) and turned into its dead-letter record,
    while the rest of the batch commits. Transient errors propagate and roll back the whole batch, to be
    retried by the caller.

    Why a savepoint for every handler: running the batch without them and re-running it isolated only after
    a failure saves two round trips a message, but runs the handlers before the bad message twice, and their
    side effects outside the transaction (metrics, logs) with them.
    """
    results: list[Result | None] = [None] * len(batch)
    ids: dict[int, str] = {}
    for i, incoming in enumerate(batch):
        try:
            ids[i] = id_of(incoming)
        except Rejected as rejected:
            results[i] = _rejected(service, incoming, rejected.reason, rejected.message, rejected.location)
    async with conn.transaction():
        recorded = await db.claim_processed(conn, service, set(ids.values()))
        fresh: dict[str, list[dict[str, Any]]] = {}
        dropped: list[str] = []
        for i, message_id in ids.items():
            if message_id in recorded:
                if replay is None:
                    outputs = [Outgoing.from_record(r) for r in recorded[message_id]]
                else:
                    outputs = list(await replay(conn, batch[i]))
                results[i] = Result(outputs, "duplicate")
                continue
            results[i] = result = await _apply_isolated(conn, service, handler, batch[i])
            if result.outcome == "applied":
                records = [] if replay is not None else [o.to_record() for o in result.outputs]
                recorded[message_id] = fresh[message_id] = records
            else:
                dropped.append(message_id)
        await db.record_outputs(conn, service, fresh, dropped)
    return [r for r in results if r is not None]


async def _apply_isolated(
    conn: asyncpg.Connection, service: str, handler: Handler, incoming: Incoming
) -> Result:
    try:
        async with conn.transaction():
            return Result(list(await handler(conn, incoming)), "applied")
    except TRANSIENT_ERRORS:
        raise
    except Rejected as rejected:
        return _rejected(service, incoming, rejected.reason, rejected.message, rejected.location)
    except ValidationError as exc:
        return _rejected(service, incoming, "invalid_message", safe_validation_message(exc), {})
    except Exception as exc:
        log.exception(
            "%s: unexpected %s at %s[%d]@%d",
            service,
            type(exc).__name__,
            incoming.topic,
            incoming.partition,
            incoming.offset,
        )
        return _rejected(service, incoming, "processing_error", type(exc).__name__, {})


def _rejected(
    service: str, incoming: Incoming, reason: str, message: str, location: dict[str, str]
) -> Result:
    return Result([dead_letter_message(service, incoming, reason, message, location)], "dead_lettered")


def dead_letter_message(
    service: str, incoming: Incoming, reason: str, message: str, location: dict[str, str]
) -> Outgoing:
    """The DLT record of an input: its original key and bytes, and PHI-free headers saying why and where."""
    headers = [
        ("reason", reason),
        ("error", message[:1000]),
        ("service", service),
        ("source_topic", incoming.topic),
        ("source_partition", str(incoming.partition)),
        ("source_offset", str(incoming.offset)),
    ]
    headers += [(f"location.{k}", v) for k, v in sorted(location.items())]
    return Outgoing(
        topic=dlt_name(incoming.topic),
        key=(incoming.key or b"").decode(errors="replace"),
        value=incoming.value,
        headers=tuple((k, v.encode()) for k, v in headers),
    )
