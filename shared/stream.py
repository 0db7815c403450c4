"""The stage runtime: one faust app per service, and the one way every stage processes a message.

Per input message: (1) find its idempotency id, (2) in ONE PostgreSQL transaction apply the handler's writes and
record the message as processed together with the messages it produced, (3) publish those messages and wait for
the broker's acknowledgement, (4) let Faust commit the offset. A crash between (2) and (3) is healed on
redelivery: step (2) finds the record and step (3) re-publishes the same bytes with the same deterministic ids.
Bad input never stops the stream: it goes to ``<topic>.dlt`` with the original bytes and a bounded reason.
Transient failures (database or broker down) are retried with backoff instead, because dead-lettering a valid
remittance during a PostgreSQL restart would lose money from the ledger.
"""

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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


Handler = Callable[[asyncpg.Connection, Incoming], Awaitable[Sequence[Outgoing]]]
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

    def __init__(self, service: str, settings: Settings | None = None) -> None:
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
            consumer_max_fetch_size=16 * 1024 * 1024,
            broker_commit_every=100,
            broker_commit_interval=1.0,
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

    def consume(self, topics: Sequence[str], handler: Handler, id_of: IdOf = envelope_event_id) -> None:
        """Register an agent that feeds every record of ``topics`` through :meth:`process`."""
        channel = self.app.topic(*topics, key_serializer="raw", value_serializer="raw", allow_empty=True)

        async def agent(stream: Any) -> None:
            async for event in stream.events():
                message = event.message
                incoming = Incoming(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value or b"",
                    headers={k: bytes(v or b"") for k, v in (message.headers or [])},
                )
                await self.process(incoming, handler, id_of)

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

    async def process(self, incoming: Incoming, handler: Handler, id_of: IdOf) -> str:
        """Apply one message exactly once in effect; return the outcome label."""
        service = self.service
        telemetry.MESSAGES_CONSUMED.labels(service, incoming.topic).inc()
        telemetry.IN_PROGRESS.labels(service).inc()
        started = time.perf_counter()
        try:
            outputs: list[Outgoing] = []
            try:
                message_id = id_of(incoming)
                outputs, duplicate = await self.retrying(lambda: self._apply(handler, incoming, message_id))
                outcome = "duplicate" if duplicate else "applied"
            except Rejected as rejected:
                outputs = [
                    dead_letter_message(
                        service, incoming, rejected.reason, rejected.message, rejected.location
                    )
                ]
                outcome = "dead_lettered"
            except ValidationError as exc:
                outputs = [
                    dead_letter_message(
                        service, incoming, "invalid_message", safe_validation_message(exc), {}
                    )
                ]
                outcome = "dead_lettered"
            except Exception as exc:
                log.exception(
                    "%s: unexpected %s at %s[%d]@%d",
                    service,
                    type(exc).__name__,
                    incoming.topic,
                    incoming.partition,
                    incoming.offset,
                )
                outputs = [dead_letter_message(service, incoming, "processing_error", type(exc).__name__, {})]
                outcome = "dead_lettered"
            if outcome == "dead_lettered":
                self._count_dead_letter(incoming, outputs[0])
            # Outside the try: once the effect is committed (or the input judged bad), its messages are owed to
            # the broker. Publishing retries until acknowledged and never dead-letters a committed effect.
            await self.retrying(lambda: self.publish(outputs), broker_errors=True)
        finally:
            telemetry.IN_PROGRESS.labels(service).dec()
        telemetry.MESSAGES_PROCESSED.labels(service, outcome).inc()
        telemetry.PROCESSING_SECONDS.labels(service).observe(time.perf_counter() - started)
        telemetry.LAST_PROCESSED.labels(service).set(time.time())
        return outcome

    async def _apply(
        self, handler: Handler, incoming: Incoming, message_id: str
    ) -> tuple[list[Outgoing], bool]:
        pool = await self.pool()
        async with pool.acquire() as conn:
            return await apply_once(conn, self.service, handler, incoming, message_id)

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
        """Send every message, then wait until the broker has acknowledged all of them."""
        pending = []
        for out in outputs:
            channel = self.app.topic(out.topic, key_serializer="raw", value_serializer="raw")
            pending.append(
                await channel.send(
                    key=out.key.encode(), value=out.value, headers=list(out.headers) or None, force=True
                )
            )
            telemetry.MESSAGES_PRODUCED.labels(self.service, out.topic).inc()
        for fut in pending:
            await fut

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

    async def dead_letter(
        self, incoming: Incoming, reason: str, message: str, location: dict[str, str]
    ) -> None:
        """Send the original bytes to the topic's DLT with headers naming reason, error and source."""
        record = dead_letter_message(self.service, incoming, reason, message, location)
        self._count_dead_letter(incoming, record)
        await self.retrying(lambda: self.publish([record]), broker_errors=True)


async def apply_once(
    conn: asyncpg.Connection, service: str, handler: Handler, incoming: Incoming, message_id: str
) -> tuple[list[Outgoing], bool]:
    """In one transaction: the handler's writes plus the processed record holding its outputs; on a redelivery,
    the recorded outputs instead. Returns (messages to publish, whether it was a redelivery)."""
    async with conn.transaction():
        previous = await db.already_processed(conn, service, message_id)
        if previous is not None:
            return [Outgoing.from_record(r) for r in previous], True
        outputs = list(await handler(conn, incoming))
        await db.mark_processed(conn, service, message_id, [o.to_record() for o in outputs])
        return outputs, False


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
