"""``make bench``: a generated feed through the five services as processes, on a stack of its own.

Prints throughput (claim payments/s and PLB pairs/s from the first publish until the ledger is quiet),
latency from a file's publish to each of its offset events (p50/p95/p99), peak RSS per service process, and
whether the ledger equals ``expected.json`` and passes ``ledger check`` — once with one worker per stage and
once with two.

Size: ``BENCH_CLAIMS`` (default 200 000 claim payments; the issue's figure), ``BENCH_WORKERS`` (``1,2``).
``BENCH_BROKERS=3`` runs the stack on a 3-broker KRaft cluster (replication factor 3, ``min.insync.replicas=2``,
``acks=all``) instead of one broker.

Load shape: a payer-cycle burst. Every 835 file is published at once, in generator order. Raw files are keyed
by tenant and X12 sender (``services.intake.publish.interchange_sender``), so each payer's files reach intake in publish
order on one partition; detection compares a claim only with earlier-dated claims already seen, so a duplicate
payment must not overtake its original. Letters are imported (and settled) before the 835 feed.

Latency, two figures, both from Kafka ``CreateTime`` on one machine's clock, read by a group-less consumer:
*publish→offset* runs from a file's publish to every ``remit.offsets.v1`` event with its trace number, so under
a burst it includes the time the file waited in the intake backlog; *intake→offset* runs from intake's
``remit.remittances.v1`` event for that trace number (intake has parsed and posted the file) to the same offset
events, which is the latency of detection, matching and the hops between them.
"""

import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cli import ledger_check, letters
from cli.local_infra import Stack, start_stack
from cli.runner import Pipeline
from contracts import topics
from devtools.generate import FeedFile, Spec, compare, feed_order, generate
from services.intake import publish
from shared import kafka, kafka_security
from shared.settings import REPO_ROOT, SERVICES, Settings

ROOT = REPO_ROOT / ".local" / "bench"
TRACE = re.compile(rb"\nTRN\*1\*([^*~]+)")
QUIET = 4.0
OFFSETS = topics.OFFSETS.name
REMITTANCES = topics.REMITTANCES.name


def spec_for(claims: int, prefix: str) -> Spec:
    """2 tenants × 3 payers × 16 providers × 60 days (20 payment days a payer); claims per remittance fill the
    size (stories add ~5 %). One overpayment story per 14 claims (the generator's default is 20) brings about
    one PLB pair per 9.5 claims, so 200 000 claims come with more than 20 000 offsets."""
    txns = 2 * 3 * 16 * 20
    per_remit = max(5, round(claims / txns / 1.05))
    return Spec(
        tenants=2,
        payers=3,
        providers=16,
        days=60,
        seed=42,
        claims_per_remit=per_remit,
        story_rate=per_remit / 14,
        tenant_prefix=prefix,
    )


@dataclass
class Result:
    workers: int
    brokers: int
    claims: int
    pairs: int
    seconds: float
    latencies: list[float]
    after_intake: list[float]
    rss_kib: dict[str, int]
    differences: list[str]
    breaches: int


def vm_hwm(pid: int) -> int:
    """Peak resident set (KiB) of a process, from /proc/<pid>/status VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def collect_stamps(
    settings: Settings, sinks: dict[str, dict[str, list[int]]], stop: asyncio.Event
) -> None:
    """topic → trace number → Kafka timestamps (ms) of its events, from now on (assigned, no group)."""
    topics = list(sinks)
    client = AIOKafkaAdminClient(**kafka_security.client_kwargs(settings))
    await client.start()
    try:
        parts = await kafka.topic_partitions(client, topics)
    finally:
        await client.close()
    consumer = AIOKafkaConsumer(**kafka_security.client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in parts[topic]]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in got.items():
                sink = sinks[tp.topic]
                for record in records:
                    payload = json.loads(record.value)["payload"]
                    sink.setdefault(payload["trace_number"], []).append(record.timestamp)
    finally:
        await consumer.stop()


async def publish_burst(settings: Settings, out: Path, feed: list[FeedFile]) -> dict[str, int]:
    """Publish every 835 file in generator order without waiting between them; return each trace number's
    publish time (ms since the epoch)."""
    sent: dict[str, int] = {}
    producer = AIOKafkaProducer(
        **kafka_security.client_kwargs(settings), max_request_size=kafka.MAX_MESSAGE_BYTES, acks="all"
    )
    await producer.start()
    try:
        pending = []
        for item in (f for f in feed if f.kind == "835"):
            content = (out / item.path).read_bytes()
            key, value = publish.raw_file_message(content, Path(item.path).name, item.tenant, "cli")
            now = int(time.time() * 1000)
            pending.append(await producer.send(topics.INTAKE.name, value=value, key=key))
            for trace in TRACE.findall(content):
                sent.setdefault(trace.decode(), now)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def quiet_ledger(stack: Stack, expected: dict[str, Any], *, letters_only: bool = False) -> None:
    """Wait until matching has explained every planned PLB pair (unless ``letters_only``) and nothing was
    processed for ``QUIET`` seconds.

    Read from the ledger, not from consumer lag: ``Pipeline.settle`` asks the broker for end offsets of every
    topic, and on this stack that call sometimes retried until its timeout on every poll, so it never
    settled (reported as a finding).
    """
    tenants = list(expected["tenants"])
    pairs = (
        0
        if letters_only
        else sum(sum(t["plb_pairs_by_bucket"].values()) for t in expected["tenants"].values())
    )
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        last, since = -1, time.monotonic()
        while True:
            count = await conn.fetchval("SELECT count(*) FROM ops.processed_events")
            explained = await conn.fetchval(
                "SELECT count(*) FROM matching.adjustments WHERE tenant_id = ANY($1::text[])", tenants
            )
            if count != last or explained < pairs:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= QUIET:
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def run_once(stack: Stack, claims: int, workers: int) -> Result:
    prefix = f"b{workers}w{claims}"
    out = ROOT / f"feed-{prefix}"
    if not (out / "expected.json").exists():
        generate(spec_for(claims, prefix), out)
    expected = json.loads((out / "expected.json").read_text())
    feed = feed_order(out)
    env = {"OFFSETSTREAM_TODAY": expected["today"], "OFFSETSTREAM_LOG_LEVEL": "WARNING"}
    async with Pipeline(stack, env=env, workers=dict.fromkeys(SERVICES, workers)) as pipeline:
        settings = pipeline.settings
        for item in (f for f in feed if f.kind == "letters"):
            await letters.publish(settings, letters.read_import(out / item.path), item.tenant, "cli")
        await quiet_ledger(stack, expected, letters_only=True)
        stamps: dict[str, dict[str, list[int]]] = {OFFSETS: {}, REMITTANCES: {}}
        stop = asyncio.Event()
        # The probe reads output topics no operator reads: it logs in as the broker's admin.
        collector = asyncio.create_task(collect_stamps(stack.settings("admin"), stamps, stop))
        await asyncio.sleep(2)
        started = time.monotonic()
        sent = await publish_burst(settings, out, feed)
        await quiet_ledger(stack, expected)
        seconds = time.monotonic() - started - QUIET
        stop.set()
        await collector
        rss = {label: vm_hwm(pid) for label, pid in stack.services.items()}
        conn = await asyncpg.connect(stack.postgres.dsn)
        try:
            diffs = await compare(conn, out)
            breaches = 0
            for tenant in expected["tenants"]:
                breaches += len(await ledger_check.check(conn, tenant))
        finally:
            await conn.close()
    offsets, posted = stamps[OFFSETS], stamps[REMITTANCES]
    latencies = [
        (ts - sent[trace]) / 1000 for trace, times in offsets.items() if trace in sent for ts in times
    ]
    after_intake = [
        (ts - min(posted[trace])) / 1000
        for trace, times in offsets.items()
        if trace in posted
        for ts in times
    ]
    tenants = expected["tenants"].values()
    return Result(
        workers,
        stack.brokers,
        sum(t["claim_payments"] for t in tenants),
        sum(sum(t["plb_pairs_by_bucket"].values()) for t in tenants),
        seconds,
        latencies,
        after_intake,
        rss,
        diffs,
        breaches,
    )


def _percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 1 else [0.0] * 99


def show(r: Result) -> None:
    q = _percentiles(r.latencies)
    qi = _percentiles(r.after_intake)
    print(f"\n== {r.workers} worker(s) per stage, {r.brokers} Kafka broker(s) ==")
    print(
        f"claim payments     {r.claims:>9,}   PLB pairs {r.pairs:,}   wall {r.seconds:,.1f} s (first publish → quiet)"
    )
    print(
        f"throughput         {r.claims / r.seconds:>9,.0f} claim payments/s   {r.pairs / r.seconds:,.1f} PLB pairs/s"
    )
    print(
        f"publish→offset     p50 {q[49]:.2f} s   p95 {q[94]:.2f} s   p99 {q[98]:.2f} s   ({len(r.latencies):,} offset events)"
    )
    print(f"intake→offset      p50 {qi[49]:.2f} s   p95 {qi[94]:.2f} s   p99 {qi[98]:.2f} s")
    print("peak RSS (VmHWM)   " + "   ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(r.rss_kib.items())))
    verdict = (
        "equals expected.json"
        if not r.differences
        else f"{len(r.differences)} difference(s) from expected.json"
    )
    print(
        f"ledger             {verdict}; ledger check {'passes' if not r.breaches else f'{r.breaches} breach(es)'}"
    )
    for line in r.differences[:15]:
        print("   ", line)


async def main() -> int:
    claims = int(os.environ.get("BENCH_CLAIMS", "200000"))
    workers = [int(w) for w in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
    brokers = int(os.environ.get("BENCH_BROKERS", "1"))
    print(
        f"end-to-end bench: ~{claims:,} claim payments, workers {workers}, {brokers} Kafka broker(s); "
        f"stack under {ROOT / 'stack'}",
        flush=True,
    )
    stack = await asyncio.to_thread(start_stack, ROOT / "stack", "bench", durable=False, brokers=brokers)
    failed = False
    try:
        for count in workers:
            result = await run_once(stack, claims, count)
            show(result)
            failed |= bool(result.differences or result.breaches)
    finally:
        await asyncio.to_thread(stack.stop)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
