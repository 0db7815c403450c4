"""The metric objects themselves: Prometheus naming, bounded labels, zero series from start-up, and the lag
gauge's bookkeeping (no broker needed: the admin client and consumer are stand-ins)."""

import importlib
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from contracts.topics import OFFSETS
from shared import lag, telemetry
from shared.settings import SERVICES

MODULES = ["shared.telemetry", *(f"services.{name}.metrics" for name in SERVICES)]
BOUNDED_LABELS = {
    "service", "topic", "partition", "outcome", "reason", "feed", "kind", "rule", "bucket", "part", "change",
    "policy", "direction", "channel",
}  # fmt: skip


def _ours() -> list[Any]:
    for module in MODULES:
        importlib.import_module(module)
    return [family for family in REGISTRY.collect() if family.name.startswith("remit_")]


def test_every_metric_is_named_and_labelled_by_the_conventions() -> None:
    families = _ours()
    assert len(families) > 30
    for family in families:
        assert family.documentation.strip(), family.name
        assert not family.name.endswith("_total"), f"{family.name}: prometheus_client adds _total to counters"
        if family.type == "gauge":
            assert not family.name.endswith(("_count", "_sum", "_bucket")), family.name
        if "dollars" in family.name:
            assert family.name.endswith(("_dollars", "_dollars_total")) or family.type == "counter", (
                family.name
            )
        if "seconds" in family.name or "duration" in family.name:
            assert "_seconds" in family.name, f"{family.name}: time is in seconds"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= BOUNDED_LABELS, f"{sample.name}: {sorted(sample.labels)}"
            assert not any("tenant" in name for name in sample.labels), sample.name


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_declared_stage_exports_zeros_before_its_first_message() -> None:
    telemetry.declare_service("observability-test")
    for outcome in telemetry.OUTCOMES:
        assert _sample("remit_messages_processed_total", service="observability-test", outcome=outcome) == 0
    for reason in telemetry.STAGE_REASONS:
        assert _sample("remit_dead_letters_total", service="observability-test", reason=reason) == 0
    assert _sample("remit_processing_duration_seconds_count", service="observability-test") == 0


def test_matching_buckets_are_exported_from_import() -> None:
    from services.matching import metrics

    assert set(metrics.BUCKETS) == {
        "allocated", "unmatched", "forwarding_balance", "non_offset", "deferral", "refund_acknowledged",
        "staff_dismissed",
    }  # fmt: skip
    for bucket in metrics.BUCKETS:
        assert _sample("remit_offset_dollars_total", bucket=bucket) is not None


def test_ledger_gauges_show_every_installed_policy_and_the_unmatched_age() -> None:
    from services.matching import metrics

    metrics.show_ledger(
        {"medicare": (2, Decimal("75.72"))},
        Decimal("12.50"),
        date(2026, 10, 5),
        date(2026, 11, 23),
        installed=["medicare", "commercial"],
    )
    assert _sample("remit_receivables_open", policy="medicare") == 2
    assert _sample("remit_receivables_open_balance_dollars", policy="medicare") == pytest.approx(75.72)
    assert _sample("remit_receivables_open_balance_dollars", policy="commercial") == 0
    assert _sample("remit_recovered_dollars_total", policy="commercial", part="interest") == 0
    assert _sample("remit_unmatched_offset_dollars") == 12.5
    assert _sample("remit_unmatched_oldest_age_seconds") == 49 * 86400
    metrics.show_ledger({}, Decimal(0), None, date(2026, 11, 23), installed=["medicare"])
    assert _sample("remit_unmatched_oldest_age_seconds") == 0
    assert _sample("remit_receivables_open", policy="medicare") == 0


class FakeAdmin:
    """Answers describe_topics and list_consumer_group_offsets like aiokafka's admin client."""

    def __init__(self, committed: dict[TopicPartition, int]) -> None:
        self.committed = committed

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [
            {"topic": t, "error_code": 0, "partitions": [{"partition": 0}, {"partition": 1}]} for t in topics
        ]

    async def list_consumer_group_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, Any]:
        assert group_id == "offsetstream-matching"
        return {tp: SimpleNamespace(offset=self.committed.get(tp, -1)) for tp in partitions}


class FakeConsumer:
    """Answers end_offsets and beginning_offsets like aiokafka's consumer."""

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 10)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 4)


async def test_lag_is_log_end_minus_committed_or_log_start() -> None:
    # Step: partition 0 committed up to 7; partition 1 never committed (consumed from the log start, 4).
    admin = FakeAdmin({TopicPartition(OFFSETS.name, 0): 7})
    measured = await lag.partition_lag(
        admin,
        FakeConsumer(),
        "offsetstream-matching",
        [OFFSETS.name],
    )
    assert measured == {TopicPartition("remit.offsets.v1", 0): 3, TopicPartition("remit.offsets.v1", 1): 6}


def test_lag_gauge_forgets_partitions_no_longer_consumed() -> None:
    monitor = lag.LagMonitor("lag-test", "offsetstream-lag-test", "127.0.0.1:1", list)
    monitor.publish({TopicPartition("a", 0): 5, TopicPartition("b", 1): 2})
    assert _sample("remit_consumer_lag_messages", service="lag-test", topic="a", partition="0") == 5
    monitor.publish({TopicPartition("b", 1): 0})
    assert _sample("remit_consumer_lag_messages", service="lag-test", topic="a", partition="0") is None
    assert _sample("remit_consumer_lag_messages", service="lag-test", topic="b", partition="1") == 0


def test_every_stage_watches_its_lag() -> None:
    stage = importlib.import_module("services.matching.app").from_environment()
    topics = [t for subscribed, _ in stage.subscriptions for t in subscribed]
    assert "remit.provider-adjustments.v1" in topics
    assert any(getattr(task, "__name__", "") == "run" for task in stage.app._app_tasks)
