"""Metrics common to every stage and logging set-up. Labels are bounded: service, topic, partition, outcome, reason.

Domain metrics (dollars, counts per rule) live in each service's ``metrics.py``; these are the pipeline ones.
Names follow Prometheus conventions (base units, ``_total`` on counters); no label ever carries a tenant, a
payer's patient, a member id or a document value, so a scrape can be shared with anyone who runs the pipeline.
"""

import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import faust
from aiohttp.web import Response
from faust import web
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from shared import phi

OUTCOMES = ("applied", "duplicate", "dead_lettered")
STAGE_REASONS = ("invalid_message", "processing_error", "unknown_topic")

MESSAGES_CONSUMED = Counter(
    "remit_messages_consumed_total", "Messages read from an input topic.", ["service", "topic"]
)
MESSAGES_PROCESSED = Counter(
    "remit_messages_processed_total",
    "Input messages by outcome: applied, duplicate (already applied), dead_lettered.",
    ["service", "outcome"],
)
MESSAGES_PRODUCED = Counter("remit_messages_produced_total", "Messages published.", ["service", "topic"])
DEAD_LETTERS = Counter(
    "remit_dead_letters_total", "Messages sent to a dead-letter topic.", ["service", "reason"]
)
PROCESSING_SECONDS = Histogram(
    "remit_processing_duration_seconds",
    "Time to process one input message, DB transaction and publish included (a batch's time shared evenly "
    "among its messages).",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "remit_batch_messages",
    "Input messages applied together in one transaction and one broker-acknowledgement wait.",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
IN_PROGRESS = Gauge("remit_messages_in_progress", "Input messages being processed now.", ["service"])
LAST_PROCESSED = Gauge(
    "remit_last_processed_timestamp_seconds", "Unix time the service last finished a message.", ["service"]
)
TRANSIENT_RETRIES = Counter(
    "remit_transient_retries_total", "Retries after a transient database or broker error.", ["service"]
)
CONSUMER_LAG = Gauge(
    "remit_consumer_lag_messages",
    "Messages in an input partition not yet committed by the stage's consumer group (broker's view; every "
    "worker of a stage reports the whole group, so aggregate with max by (service, topic, partition)).",
    ["service", "topic", "partition"],
)


def preset(counter: Counter, *label_sets: Iterable[str] | str) -> None:
    """Create known label sets at zero, so ``rate``/``increase`` see the first increment instead of a series
    that appears already at its value, and "nothing happened" reads as 0 rather than as no data."""
    for labels in label_sets:
        counter.labels(*((labels,) if isinstance(labels, str) else tuple(labels)))


class LeanMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor without its per-message work.

    Why: profiles of the running stages (``py-spy --gil`` on a ``make bench`` run, devtools/bench/README.md)
    put Faust's per-event sensor calls (counters by topic and stream, runtime deques, labelled series) at about
    5 % of a stage's CPU. The stage runtime already counts what it consumes and how each message ended, per
    batch (``remit_messages_consumed_total``, ``remit_messages_processed_total``). What stays is what Faust
    reads back (the time a stream last took an event, for its stalled-stream warning) and the sensor's
    per-rebalance, per-commit and per-send series, which are few."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per message: counted per batch by the stage runtime."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict[str, Any] | None:
        """Only the inbound time Faust's stalled-stream check reads (``stream_inbound_time``)."""
        self.stream_inbound_time[tp] = time.monotonic()
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: dict[str, Any] | None = None
    ) -> None:
        """Nothing per event: the batch's processing time is ``remit_processing_duration_seconds``."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per message (see :meth:`on_message_in`)."""


@functools.cache
def _faust_metrics(service: str) -> FaustMetrics:
    return FaustMetrics.create(REGISTRY, f"faust_{service}")


def serve_metrics(app: faust.App, service: str) -> None:
    """Faust's own sensors on a stage's app and ``/metrics`` serving every metric of the process, as
    ``faust.sensors.prometheus.setup_prometheus_sensors`` does, except that Faust's metrics of a service are
    registered once per process: Prometheus' registry refuses a second registration, and a stage may be built
    more than once in one process (the in-process test pipeline builds every stage)."""
    app.monitor = LeanMonitor(metrics=_faust_metrics(service))

    @app.page("/metrics")
    async def metrics_handler(self: web.View, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return cast(
            web.Response, Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200)
        )


def declare_service(service: str) -> None:
    """Export a stage's pipeline series from start-up: outcomes, the stage's own dead-letter reasons,
    latency and in-flight count. A stage that has not processed anything yet then shows zeros, not gaps."""
    preset(MESSAGES_PROCESSED, *((service, outcome) for outcome in OUTCOMES))
    preset(DEAD_LETTERS, *((service, reason) for reason in STAGE_REASONS))
    preset(TRANSIENT_RETRIES, service)
    PROCESSING_SECONDS.labels(service)
    BATCH_SIZE.labels(service)
    IN_PROGRESS.labels(service)


KAFKA_CLIENT_LOGGERS = (
    "aiokafka.client",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
)
"""The Kafka client's loggers that repeat one line per retry while a broker is unreachable."""


class RepeatFilter(logging.Filter):
    """Let one line of a kind through per ``interval`` seconds and count the rest.

    While the broker is down the Kafka client logs each failed connect and metadata attempt, about 1 200
    lines a second per service, which buries everything else and fills disks. A kind is the logger and the
    message *template* (``"Unable connect to node with id %s: %s"``), so the number of kinds is bounded by
    the client's source, not by its arguments. The next line let through says how many were held back; a
    different message, or the same one after the interval, passes at once.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval, self.clock = interval, clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None:
            since, held = last
            if now - since < self.interval:
                self._seen[key] = (since, held + 1)
                return False
            if held:
                record.msg = f"{record.getMessage()} ({held} more like this in the last {now - since:.0f} s)"
                record.args = None
        self._seen[key] = (now, 0)
        return True


def setup_logging(level: str) -> None:
    """Plain, PHI-free log lines: we log ids, counts and amounts, never document text, and every handler
    masks what the input being handled names of its patients (``shared.phi.LogScrubber``: a traceback can quote
    a database error's key values). The Kafka client's retry lines are thinned out (:class:`RepeatFilter`) so a
    broker outage does not flood the log."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:  # the outbound scrubber, for what handlers let slip
        if not any(isinstance(f, phi.LogScrubber) for f in handler.filters):
            handler.addFilter(phi.LogScrubber())
    repeats = RepeatFilter()
    for name in KAFKA_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeats)
