"""A broker outage must not flood the log: the Kafka client's retry lines are thinned to one per interval."""

import logging

import pytest

from shared import telemetry


def record(msg: str, *args: object, name: str = "aiokafka.client") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_line_per_kind_per_interval_then_a_count_of_the_rest() -> None:
    now = [100.0]
    repeats = telemetry.RepeatFilter(interval=10.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = [repeats.filter(record(template, 1, f"attempt {i}")) for i in range(1200)]
    assert passed.count(True) == 1
    assert passed[0]
    assert repeats.filter(record("Unable to update metadata from %s", [1]))  # another kind passes at once
    now[0] += 10.0
    later = record(template, 1, "refused")
    assert repeats.filter(later)
    assert (
        later.getMessage()
        == "Unable connect to node with id 1: refused (1199 more like this in the last 10 s)"
    )
    assert not repeats.filter(record(template, 1, "refused"))
    now[0] += 10.0
    quiet = record(template, 1, "refused")
    assert repeats.filter(quiet)
    assert (
        quiet.getMessage() == "Unable connect to node with id 1: refused (1 more like this in the last 10 s)"
    )


def test_the_same_template_from_another_logger_is_another_kind() -> None:
    repeats = telemetry.RepeatFilter(interval=10.0, clock=lambda: 0.0)
    assert repeats.filter(
        record("Failed fetch messages from %s: %s", 1, "x", name="aiokafka.consumer.fetcher")
    )
    assert repeats.filter(record("Failed fetch messages from %s: %s", 1, "x", name="aiokafka.client"))
    assert not repeats.filter(record("Failed fetch messages from %s: %s", 2, "y", name="aiokafka.client"))


def test_services_thin_out_the_kafka_clients_retry_lines(caplog: pytest.LogCaptureFixture) -> None:
    telemetry.setup_logging("INFO")
    telemetry.setup_logging("INFO")  # a second stage in the same process adds no second filter
    client = logging.getLogger("aiokafka.client")
    assert sum(isinstance(f, telemetry.RepeatFilter) for f in client.filters) == 1
    with caplog.at_level(logging.ERROR, logger="aiokafka.client"):
        for attempt in range(500):
            client.error("Unable connect to node with id %s: %s", 1, f"attempt {attempt}")
    assert len(caplog.records) == 1
    ours = logging.getLogger("shared.stream")
    with caplog.at_level(logging.ERROR, logger="shared.stream"):
        for _ in range(3):
            ours.error("our own lines are never thinned")
    assert len(caplog.records) == 4
