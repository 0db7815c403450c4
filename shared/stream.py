"""The stage runtime: one faust app per service, and the one way every stage processes its messages.

Messages are taken in batches (Faust ``take_events``: up to ``batch_max_messages``, waiting at most
``batch_max_wait_seconds``). Per batch: (1) find each message's idempotency id and claim them all in
``ops.processed_events``, (2) in ONE PostgreSQL transaction apply each new message's handler and record the
messages it produced, (3) commit, publish every output and wait once for the broker's acknowledgements, (4) let
Faust commit the offsets. A crash between (3) and (4) is healed on redelivery: step (1) finds the claims and
step (3) re-publishes the same bytes with the same deterministic ids. Claiming *before* the handler runs means
two workers that briefly hold the same partition during a rebalance can never both apply it. Bad input never
stops the stream: the batch's handlers run together (one call per topic for a stage that registered a batch
handler, :meth:`Stage.handle_batch`); when one input fails they are rolled back and re-run in parts until it
is isolated (``shared.batches``), and it goes to ``<topic>.dlt`` with the original bytes and a bounded reason,
while the rest of the batch commits. Transient
failures (database or broker down, a deadlock between workers) roll the whole batch back and retry it with
backoff, because dead-lettering a valid remittance during a PostgreSQL restart would lose money from the ledger.
Which failures are transient is one table, ``shared.failures``; everything else is permanent for its input and
goes to the DLT at once, so one input can never stall its partition. An output larger than the broker's message
cap is such a failure: it is found before the transaction commits (the input is rolled back and dead-lettered
as ``too_large``), and a dead-letter record that would not fit keeps a small body naming where the original is.

Why batches: one message per transaction and per ack wait costs ~6 ms of round trips and fsyncs, which capped
every agent near 150 messages/s (devtools/bench/README.md); a batch pays those once.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import asyncpg
import faust
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.topics import P, Topic
from shared import db, gc_tuning, kafka_security, lag, lean_consumer, telemetry
from shared.batches import apply_batch, refused_record
from shared.bundles import consecutive_parts
from shared.failures import is_transient, permanent_reason
from shared.messages import (
    BatchHandler,
    DeadLetterHook,
    EventBatchHandler,
    EventHandler,
    FailedInput,
    Handler,
    IdOf,
    Incoming,
    Outgoing,
    PerInput,
    Rejected,
    Replay,
    Result,
    envelope_event_id,
    refusal,
)
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")


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
            broker_credentials=kafka_security.faust_credentials(s),
            store="memory://",
            value_serializer="raw",
            key_serializer="raw",
            web_bind=s.web_host,
            web_host=s.web_host,
            web_port=s.web_port(service),
            datadir=str(datadir),
            topic_partitions=s.topic_partitions,
            topic_replication_factor=s.kafka_replication_factor,
            autodiscover=False,
            producer_acks=-1,  # acks=all (faust's default, stated): min.insync.replicas holds on a cluster
            producer_max_request_size=16 * 1024 * 1024,
            # 256 KiB record batches, not Faust's 16 KiB: a batch's outputs (200 claim payments are ~300 KiB)
            # reach the broker as a few batches per partition instead of ~20, each validated and appended on
            # its own. Measured: the broker's CPU per claim −25 % (session 7) and −43 % in two A/B pairs
            # (session 9), nothing else moved (devtools/bench/README.md, "Kafka settings, measured").
            producer_max_batch_size=256 * 1024,
            consumer_max_fetch_size=fetch_bytes,
            broker_commit_every=100,
            broker_commit_interval=s.commit_interval_seconds,
        )
        lean_consumer.use_lean_consumer(self.app)
        telemetry.serve_metrics(self.app, service)
        telemetry.declare_service(service)
        self.lag_monitor = self._watch_lag()
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self.routes: dict[str, Handler | BatchHandler] = {}
        """topic name → the handler registered for it (:meth:`handle`, :meth:`handle_batch`,
        :meth:`handle_records`)."""
        self.subscriptions: list[tuple[tuple[str, ...], BatchHandler]] = []
        """(topics, dispatcher) of each agent (:meth:`consume`)."""

    def _watch_lag(self) -> lag.LagMonitor:
        """Attach a lag monitor to the faust app; it starts with the worker and reads the topics the stage
        subscribes to at that time (``consume`` runs after the stage is built)."""
        monitor = lag.LagMonitor(
            self.service,
            self.app.conf.id,
            self.settings.kafka_bootstrap,
            lambda: [topic for topics, _ in self.subscriptions for topic in topics],
            security=lambda: kafka_security.security_kwargs(self.settings),
        )
        self.app.task(monitor.run)
        return monitor

    async def pool(self) -> asyncpg.Pool:
        """The service's connection pool, created on first use (after the worker has started)."""
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await db.create_pool(self.settings, self.service)
            return self._pool

    def handle(self, topic: Topic[P], handler: EventHandler[P]) -> None:
        """Route every record of ``topic`` to ``handler`` as an envelope of the topic's payload model. A record
        that does not parse as one is dead-lettered (``invalid_message``) without reaching the handler."""

        async def parsed(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
            return await handler(conn, topic.parse(incoming.value))

        self.handle_records(topic, parsed)

    def handle_batch(self, topic: Topic[P], handler: EventBatchHandler[P]) -> None:
        """Route the records of ``topic`` to ``handler`` a stretch at a time (the consecutive records of the
        topic in a batch, see :func:`dispatcher`), as envelopes of the topic's payload model in the order
        consumed (see :class:`~shared.messages.BatchHandler` for what it must
        honour). A record that does not parse is dead-lettered (``invalid_message``) without reaching it."""
        self.handle_batches((topic,), handler)

    def handle_batches(self, topics: Sequence[Topic[Any]], handler: EventBatchHandler[Any]) -> None:
        """Route the records of several topics to one ``handler``, as :meth:`handle_batch` does for one: a
        stretch of consecutive records of any of them is one call, each record parsed as its own topic's
        payload model, mixed in the order consumed. For a handler whose statements per call do not depend on
        the topic (notification's token scans): a batch whose topics alternate is then one call, not one per
        alternation."""
        by_name = {topic.name: topic for topic in topics}

        async def parsed(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
            given: list[PerInput] = []
            envelopes: list[Envelope[Any]] = []
            at: list[int] = []
            for incoming in batch:
                try:
                    envelopes.append(by_name[incoming.topic].parse(incoming.value))
                except ValidationError as exc:
                    given.append(refusal(exc))
                    continue
                at.append(len(given))
                given.append([])
            try:
                outputs = await handler(conn, envelopes)
            except FailedInput as failed:
                raise failed.at(at[failed.position]) from failed.cause
            for position, owed in zip(at, outputs, strict=True):
                given[position] = list(owed)
            return given

        one = BatchHandler(parsed)
        for topic in topics:
            self.handle_records(topic, one)

    def handle_records(self, topic: Topic[Any], handler: Handler | BatchHandler) -> None:
        """Route every record of ``topic`` to ``handler`` as it was consumed, for a stage that needs more than
        the envelope (intake: the record's position and headers; a handler that tolerates what it cannot
        parse). One handler per topic: a second registration is a wiring mistake and fails at start-up."""
        if topic.name in self.routes:
            raise ValueError(f"{self.service}: topic {topic.name} already has a handler")
        self.routes[topic.name] = handler

    def run(self) -> None:
        """Run the stage as its worker process (``python -m services.<stage> worker``, Faust's command line),
        the collector first tuned for what the stage has built (:func:`shared.gc_tuning.tune`: frozen once the
        stage is wired, so what it holds for good is never walked again)."""
        gc_tuning.tune()
        self.app.main()

    def consume(
        self,
        *topics: Topic[Any],
        id_of: IdOf = envelope_event_id,
        batch: int | None = None,
        replay: Replay | None = None,
        dead_letter: DeadLetterHook | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """Register an agent that feeds every record of ``topics`` through :meth:`process_batch`, each to the
        handler registered for its topic (:meth:`handle`); a record of any other topic is an error of its
        own (see :func:`dispatcher`), never another topic's handler.

        ``batch`` caps the messages per transaction below the setting: a stage whose handler has effects
        outside the database (a webhook call) keeps it small, since a crash repeats the whole batch's effects.
        ``replay``, for a stage whose outputs are large and can be rebuilt (intake: every claim of a file),
        stores no outputs with the claim and rebuilds them on redelivery instead. ``dead_letter`` rewrites the
        dead-letter record of a rejected input (see :data:`DeadLetterHook`). ``max_bytes`` cuts a batch taken
        from the stream into consecutive transactions of at most that many bytes of input (at least one message
        each), for a stage whose messages carry many items each (detection's claims parts), so that a
        transaction stays bounded in items, memory and re-run cost whatever the messages hold."""
        names = tuple(t.name for t in topics)
        if missing := [name for name in names if name not in self.routes]:
            raise ValueError(f"{self.service}: no handler registered for {', '.join(missing)}")
        handler = dispatcher(self.service, {name: self.routes[name] for name in names})
        channel = self.app.topic(*names, key_serializer="raw", value_serializer="raw", allow_empty=True)
        size = min(batch or self.settings.batch_max_messages, self.settings.batch_max_messages)
        within = self.settings.batch_max_wait_seconds

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(size, within=within):
                batch = [incoming_of(event.message) for event in events]
                try:
                    for part in cut_by_bytes(batch, max_bytes):
                        await self.until_done(
                            partial(self.process_batch, part, handler, id_of, replay, dead_letter)
                        )
                except BaseException:
                    withhold_acks(events)
                    raise

        self.subscriptions.append((names, handler))
        agent.__name__ = f"{self.service}_{'_'.join(t.split('.')[1] for t in names)}".replace("-", "_")
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
        self,
        batch: Sequence[Incoming],
        handler: Handler | BatchHandler,
        id_of: IdOf,
        replay: Replay | None = None,
        dead_letter: DeadLetterHook | None = None,
    ) -> list[str]:
        """Apply a batch exactly once in effect, publish what it owes, and return each message's outcome."""
        service = self.service
        for topic, count in Counter(incoming.topic for incoming in batch).items():
            telemetry.MESSAGES_CONSUMED.labels(service, topic).inc(count)
        telemetry.IN_PROGRESS.labels(service).inc(len(batch))
        telemetry.BATCH_SIZE.labels(service).observe(len(batch))
        started = time.perf_counter()
        try:
            results = await self.retrying(lambda: self._apply(handler, batch, id_of, replay, dead_letter))
            for incoming, result in zip(batch, results, strict=True):
                if result.outcome == "dead_lettered":
                    self._count_dead_letter(incoming, result.outputs[0])
            outputs = [out for result in results for out in result.outputs]
            sources = [
                incoming for incoming, result in zip(batch, results, strict=True) for _ in result.outputs
            ]
            # Once the effects are committed (or inputs judged bad), their messages are owed to the broker.
            # Publishing retries transient failures until acknowledged; a message the broker can never take
            # (too large) is replaced by a small dead-letter record instead of stalling the partition.
            await self.retrying(lambda: self.publish(outputs, sources), broker_errors=True)
        finally:
            telemetry.IN_PROGRESS.labels(service).dec(len(batch))
        elapsed = time.perf_counter() - started
        per_message = elapsed / len(batch)
        outcomes = Counter(result.outcome for result in results)
        for outcome, count in outcomes.items():
            telemetry.MESSAGES_PROCESSED.labels(service, outcome).inc(count)
        log.info(
            "%s: batch of %d from %s: %s; published %d in %.0f ms",
            service,
            len(batch),
            ", ".join(f"{t} ×{n}" for t, n in sorted(Counter(i.topic for i in batch).items())),
            ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in sorted(outcomes.items())),
            len(outputs),
            elapsed * 1000,
        )
        histogram = telemetry.PROCESSING_SECONDS.labels(service)
        for _ in results:
            histogram.observe(per_message)
        telemetry.LAST_PROCESSED.labels(service).set(time.time())
        return [result.outcome for result in results]

    async def until_done(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run a batch until it completes. Failures of one input are dead letters (see ``shared.failures``:
        invalid input, outputs too large for the broker) and transient ones are retried inside; anything
        still escaping is a fault of the stage itself, not of an input (a schema out of date, a bug outside
        the handlers), and moving past the batch would skip its messages, so it is retried every few seconds,
        loudly, and the consumer lag shows the stall."""
        while True:
            try:
                await work()
                return
            except Exception:
                telemetry.TRANSIENT_RETRIES.labels(self.service).inc()
                log.exception("%s: a batch failed outside its handlers; retrying it in 5 s", self.service)
                await asyncio.sleep(5.0)

    async def _apply(
        self,
        handler: Handler | BatchHandler,
        batch: Sequence[Incoming],
        id_of: IdOf,
        replay: Replay | None,
        dead_letter: DeadLetterHook | None,
    ) -> list[Result]:
        pool = await self.pool()
        async with pool.acquire() as conn:
            return await apply_batch(
                conn, self.service, handler, batch, id_of, replay=replay, dead_letter=dead_letter
            )

    async def retrying(self, action: Callable[[], Awaitable[T]], *, broker_errors: bool = False) -> T:
        """Run ``action`` until it succeeds through transient failures (database or network down; with
        ``broker_errors`` also any Kafka error but a size error, for publishing what is already owed); see
        ``shared.failures.is_transient``. Anything else propagates at once."""
        delay = 0.2
        while True:
            try:
                return await action()
            except Exception as exc:
                if not is_transient(exc, broker=broker_errors):
                    raise
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

    async def publish(
        self,
        outputs: Sequence[Outgoing],
        sources: Sequence[Incoming | None] = (),
        *,
        replace_refused: bool = True,
    ) -> None:
        """Send every message, then wait until the broker has acknowledged all of them.

        Straight to the app's Kafka producer: the messages are bytes already, and Faust's channel layer
        (schemas, codecs, a future per message) cost more CPU than the rest of a typical handler.

        A message the producer or the broker refuses as too large (permanent: the stages check sizes before
        committing, so this means the broker's cap is below ``MAX_MESSAGE_BYTES``) is not retried: it is
        replaced by :func:`refused_record` (``sources[i]`` is the input that produced ``outputs[i]``, when
        known) and that small record is sent instead. Any other failure propagates for the caller to retry
        the whole publish (a message sent twice is deduplicated downstream by its id)."""
        if not outputs:
            return
        producer = await self.app.maybe_start_producer()
        origin = [*sources, *[None] * (len(outputs) - len(sources))]
        refused: list[Outgoing] = []
        sent: list[tuple[Outgoing, Incoming | None, Any]] = []
        for out, source in zip(outputs, origin, strict=True):
            headers = list(out.headers) or None
            try:
                sent.append(
                    (
                        out,
                        source,
                        await producer.send(out.topic, out.key.encode(), out.value, None, None, headers),
                    )
                )
            except Exception as exc:
                if permanent_reason(exc) != "too_large" or not replace_refused:
                    raise
                refused.append(self._refused(out, source, exc))
        acks = await asyncio.gather(*(future for _, _, future in sent), return_exceptions=True)
        for (out, source, _), ack in zip(sent, acks, strict=True):
            if isinstance(ack, BaseException) and permanent_reason(ack) == "too_large" and replace_refused:
                refused.append(self._refused(out, source, ack))
        for ack in acks:
            if isinstance(ack, BaseException) and (
                permanent_reason(ack) != "too_large" or not replace_refused
            ):
                raise ack
        if refused:
            await self.publish(
                refused, replace_refused=False
            )  # a few hundred bytes each: never refused again
        for topic, count in Counter(out.topic for out in outputs).items():
            telemetry.MESSAGES_PRODUCED.labels(self.service, topic).inc(count)

    def _refused(self, out: Outgoing, source: Incoming | None, exc: BaseException) -> Outgoing:
        record = refused_record(self.service, out, source)
        telemetry.DEAD_LETTERS.labels(self.service, "too_large").inc()
        log.error(
            "%s: the broker refused a %d-byte message for %s as too large (%s); sent %s to %s instead",
            self.service,
            len(out.value),
            out.topic,
            type(exc).__name__,
            "a shortened dead letter" if out.topic.endswith(".dlt") else "a dead letter naming it",
            record.topic,
        )
        return record

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


def dispatcher(service: str, handlers: dict[str, Handler | BatchHandler]) -> BatchHandler:
    """One handler over several topics: the records of a batch go to their topic's handler in the order
    consumed, each stretch of consecutive records of one handler in one call (a batch handler then pays its
    statements once per stretch; a batch taken under a backlog holds long stretches, as the consumer fetches
    partition by partition; topics that share one handler, :meth:`Stage.handle_batches`, share stretches).
    The order across topics is kept, not regrouped by topic: Kafka would allow that, but what a stage
    publishes, and the interest it accrues, can depend on it, and a batch must leave the ledger one message
    at a time would.

    A record of a topic nothing was registered for (a subscription and its routes out of step) is rejected as
    ``unknown_topic``: it is dead-lettered with that reason and counted like any other dead letter, never
    handled as another topic's message."""
    batched = {
        topic: h if isinstance(h, BatchHandler) else BatchHandler.each(h) for topic, h in handlers.items()
    }

    async def dispatch(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
        given: list[PerInput] = [[] for _ in batch]
        stretches: list[tuple[str, BatchHandler | None, list[int]]] = []
        for position, incoming in enumerate(batch):
            handler = batched.get(incoming.topic)
            # A handler's stretch runs across its topics; a topic with none is a stretch of its own.
            same = stretches and stretches[-1][1] is handler
            if not same or (handler is None and stretches[-1][0] != incoming.topic):
                stretches.append((incoming.topic, handler, []))
            stretches[-1][2].append(position)
        for topic, handler, positions in stretches:
            if handler is None:
                for position in positions:
                    given[position] = Rejected(
                        "unknown_topic",
                        f"{service} consumed a message from {topic!r}, a topic it has no handler for "
                        f"(it handles {', '.join(sorted(handlers))})",
                    )
                continue
            try:
                outputs = await handler.apply(conn, [batch[p] for p in positions])
            except FailedInput as failed:
                raise failed.at(positions[failed.position]) from failed.cause
            for position, owed in zip(positions, outputs, strict=True):
                given[position] = owed
        return given

    return BatchHandler(dispatch)


def cut_by_bytes(batch: Sequence[Incoming], max_bytes: int | None) -> list[Sequence[Incoming]]:
    """``batch`` in consecutive parts of at most ``max_bytes`` bytes of values each (a message larger than that
    is a part alone); the whole batch when there is no bound. Order is kept: parts are applied one after
    another, and a part applied before a later one failed is only redelivered, which its claims make
    harmless."""
    if max_bytes is None:
        return [batch]
    return consecutive_parts(batch, lambda incoming: len(incoming.value), max_bytes)


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
