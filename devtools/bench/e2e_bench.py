"""``make bench``: a generated feed through the five services as processes, on a stack of its own.

Prints throughput (claim payments/s and PLB pairs/s from the first publish until the ledger is quiet),
latency from a file's publish to each of its offset events (p50/p95/p99), peak RSS per service process, and
whether the ledger equals ``expected.json`` and passes ``ledger check`` — once with one worker per stage and
once with two.

Size: ``BENCH_CLAIMS`` (default 200 000 claim payments; the issue's figure), ``BENCH_WORKERS`` (``1,2``).
``BENCH_BROKERS=3`` runs the stack on a 3-broker KRaft cluster (replication factor 3, ``min.insync.replicas=2``,
``acks=all``) instead of one broker. ``BENCH_PGSTAT=1`` records ``pg_stat_statements`` over the measured window
and prints the top statements per stage and PostgreSQL's other costs (``devtools.bench.pgstat``);
``BENCH_PG_SETTINGS='a=1;b=2'`` adds server settings for one run (``auto_explain``, say).

The bench's PostgreSQL runs with ``durable=False`` (no fsync, no full-page writes, asynchronous commit), unlike
production: its PostgreSQL figure leaves out the commit fsyncs a production server pays per transaction.

CPU: every process tree the pipeline runs in (each service process, the Kafka broker JVM(s), the PostgreSQL
postmaster with all its backends) is measured from ``/proc`` (``devtools.bench.cpu``) from the first publish until
the ledger is quiet, and printed as CPU-ms per 1 000 claim payments, per process and in total, with the load
average at both ends. CPU-seconds do not depend on how busy the machine is; wall time does.

Paced mode (``make bench-paced``): ``BENCH_RATE=<claim payments/s>`` and ``BENCH_SECONDS=<n>`` feed the files at
that fixed rate instead of all at once (a file is published when the claims before it are due, so the feed lasts
about ``BENCH_SECONDS``; the feed is sized ``BENCH_RATE × BENCH_SECONDS`` unless ``BENCH_CLAIMS`` says otherwise),
so the latency is that of the pipeline rather than of a backlog.

Settings under test pass through: the service processes inherit the bench's environment, so Faust's own
variables (``PRODUCER_LINGER`` in seconds, ``PRODUCER_MAX_BATCH_SIZE``, ``PRODUCER_COMPRESSION_TYPE``,
``CONSUMER_MAX_FETCH_SIZE``, which win over the values ``shared.stream.Stage`` passes) and ``OFFSETSTREAM_*``
settings (``OFFSETSTREAM_COMMIT_INTERVAL_SECONDS``, ``OFFSETSTREAM_BATCH_MAX_MESSAGES``) change them for one run;
the bench prints those it sees.

Load shape: a payer-cycle burst. Every 835 file is published at once, in generator order. Raw files are keyed
by tenant and X12 sender (``services.intake.publish.interchange_sender``), so each payer's files reach intake in publish
order on one partition; detection compares a claim only with earlier-dated claims already seen, so a duplicate
payment must not overtake its original. Letters are imported (and settled) before the 835 feed.

Latency, all from Kafka ``CreateTime`` on one machine's clock, read after the run by a group-less consumer from
the end offsets noted before the first publish (so no reader competes for the cores while the CPU is measured).
A transaction is known by its trace number (TRN02), which every event below carries:

- *publish→claims*: from the raw file's record on ``remit.intake.v1`` (its timestamp, returned by the broker's
  acknowledgement) to the **last** ``remit.claim-payments.v2`` event (a part of up to 100 claims; one per transaction
  of the bench) of each of the file's transactions: the file read, parsed, posted and every claim payment visible;
- *publish→offset*: from the same raw-file record to **every** ``remit.offsets.v1`` event with one of the file's
  trace numbers (one per PLB pair): the whole pipeline, intake → detection → matching. Under a burst it includes
  the time the file waited in the intake backlog; paced, it is the pipeline's latency (the issue's "intake→offset",
  goal p99 < 2 s);
- *posted→offset*: from intake's first ``remit.remittances.v1`` event for the trace number (intake has parsed and
  posted the file) to the same offset events: detection, matching and the hops between them.
"""

import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cli import ledger_check, letters
from cli.local_infra import Stack, pid_alive, start_stack
from cli.runner import Pipeline
from contracts import topics
from devtools.bench import cpu, pgstat
from devtools.generate import FeedFile, Spec, compare, feed_order, generate
from services.intake import publish
from shared import kafka, kafka_security
from shared.settings import REPO_ROOT, SERVICES, Settings

ROOT = REPO_ROOT / ".local" / "bench"
TRACE = re.compile(rb"\nTRN\*1\*([^*~]+)")
CLAIM = re.compile(rb"\nCLP\*")
TRACE_FIELD = re.compile(rb'"trace_number":"([^"]*)"')
QUIET = 4.0
OFFSETS = topics.OFFSETS.name
REMITTANCES = topics.REMITTANCES.name
CLAIMS = topics.CLAIM_PAYMENTS.name
T = TypeVar("T")
PG_SETTINGS = tuple(line for line in os.environ.get("BENCH_PG_SETTINGS", "").split(";") if line.strip())
PGSTAT = os.environ.get("BENCH_PGSTAT", "") not in ("", "0")
KNOBS = re.compile(r"^(PRODUCER_|CONSUMER_|BROKER_|STREAM_|OFFSETSTREAM_(COMMIT|BATCH))")


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
class Load:
    """How the feed is published: all at once (``rate`` None) or at ``rate`` claim payments per second."""

    rate: float | None = None
    seconds: float | None = None

    @property
    def name(self) -> str:
        return "burst" if self.rate is None else f"paced {self.rate:g} claim payments/s"


@dataclass
class Result:
    workers: int
    brokers: int
    load: Load
    claims: int
    pairs: int
    seconds: float
    feed_seconds: float
    latencies: list[float]
    after_intake: list[float]
    to_claims: list[float]
    rss_kib: dict[str, int]
    differences: list[str]
    breaches: int
    cpu_seconds: dict[str, float]
    driver_cpu_seconds: float
    idle_cpu_per_second: dict[str, float]
    load_before: str
    load_after: str


def vm_hwm(pid: int) -> int:
    """Peak resident set (KiB) of a process, from /proc/<pid>/status VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def end_offsets(settings: Settings, names: list[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of ``names`` (where the run's events will start)."""
    client = AIOKafkaAdminClient(**kafka_security.client_kwargs(settings))
    await client.start()
    try:
        parts = await kafka.topic_partitions(client, names)
    finally:
        await client.close()
    consumer = AIOKafkaConsumer(**kafka_security.client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for name in names for p in parts[name]]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def read_stamps(
    settings: Settings, starts: dict[TopicPartition, int]
) -> dict[str, dict[str, list[int]]]:
    """topic → trace number → Kafka timestamps (ms) of its events from ``starts`` up to the end offsets now
    (assigned partitions, no group). The trace number is taken from the JSON bytes without parsing: every
    envelope of these topics has exactly one ``"trace_number"`` field, in its payload."""
    stamps: dict[str, dict[str, list[int]]] = {tp.topic: {} for tp in starts}
    consumer = AIOKafkaConsumer(
        **kafka_security.client_kwargs(settings), enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        consumer.assign(list(starts))
        ends = await consumer.end_offsets(list(starts))
        todo = {tp for tp in starts if ends[tp] > starts[tp]}
        for tp, start in starts.items():
            consumer.seek(tp, start)
        while todo:
            got = await consumer.getmany(*todo, timeout_ms=1000, max_records=20000)
            for tp, records in got.items():
                sink = stamps[tp.topic]
                for record in records:
                    found = TRACE_FIELD.search(record.value or b"")
                    if found:
                        sink.setdefault(found.group(1).decode(), []).append(record.timestamp)
                    if record.offset + 1 >= ends[tp]:
                        todo.discard(tp)
    finally:
        await consumer.stop()
    return stamps


async def publish_feed(
    settings: Settings, out: Path, feed: list[FeedFile], load: Load
) -> tuple[dict[str, int], float]:
    """Publish every 835 file in generator order, all at once or paced; return each trace number's publish time
    (the raw-file record's Kafka timestamp, ms since the epoch) and the seconds the publishing took.

    Paced: the file is sent when the claim payments before it are due at ``load.rate`` (a file holds one payer's
    transactions of one payment day, so the feed arrives in steps of one file)."""
    sent: dict[str, int] = {}
    producer = AIOKafkaProducer(
        **kafka_security.client_kwargs(settings), max_request_size=kafka.MAX_MESSAGE_BYTES, acks="all"
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        due = 0.0
        for item in (f for f in feed if f.kind == "835"):
            content = (out / item.path).read_bytes()
            if load.rate is not None:
                await asyncio.sleep(max(0.0, started + due - time.monotonic()))
                due += len(CLAIM.findall(content)) / load.rate
            key, value = publish.raw_file_message(content, Path(item.path).name, item.tenant, "cli")
            traces = [trace.decode() for trace in TRACE.findall(content)]
            future = await producer.send(topics.INTAKE.name, value=value, key=key)
            pending.append((future, traces))
        for future, traces in pending:
            stamp = (await future).timestamp
            for trace in traces:
                sent.setdefault(trace, stamp)
    finally:
        await producer.stop()
    return sent, time.monotonic() - started


async def quiet_ledger(
    stack: Stack,
    expected: dict[str, Any],
    *,
    letters_only: bool = False,
    probe: asyncpg.Connection | None = None,
) -> None:
    """Wait until matching has explained every planned PLB pair (unless ``letters_only``) and nothing was
    processed for ``QUIET`` seconds.

    Read from the ledger, not from consumer lag: ``Pipeline.settle`` asks the broker for end offsets of every
    topic, and on this stack that call sometimes retried until its timeout on every poll, so it never
    settled (reported as a finding). The polling counts ``ops.processed_events`` every 0.5 s, about 10 ms of
    a backend's CPU each time at 20 000 claims: the measured run polls on ``probe``, whose backend's CPU is
    then taken out of PostgreSQL's figure (:func:`backend_seconds`).
    """
    tenants = list(expected["tenants"])
    pairs = (
        0
        if letters_only
        else sum(sum(t["plb_pairs_by_bucket"].values()) for t in expected["tenants"].values())
    )
    conn = probe or await asyncpg.connect(stack.postgres.dsn)
    try:
        last, since = -1, time.monotonic()
        while True:
            # A stage that exited (a port taken at start-up by another stack on the machine, say) would leave
            # the ledger quiet short of the plan for ever: say which, instead of waiting.
            if dead := [label for label, pid in stack.services.items() if not pid_alive(pid)]:
                raise RuntimeError(
                    f"{', '.join(dead)} exited during the bench: see {Path(stack.root) / 'logs'}"
                )
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
        if probe is None:
            await conn.close()


def backend_seconds(conn: asyncpg.Connection) -> float:
    """CPU seconds so far of the PostgreSQL backend serving ``conn`` (0 when it cannot be read)."""
    proc = cpu.read_proc(conn.get_server_pid())
    return proc.ticks / cpu.TICKS if proc else 0.0


async def idle_rate(groups: dict[str, list[int]], seconds: float = 5.0) -> dict[str, float]:
    """CPU seconds per second each process tree spends with nothing to do (timers, heartbeats, lag probes)."""
    meter = cpu.CpuMeter(groups)
    meter.start()
    await asyncio.sleep(seconds)
    return {label: spent / seconds for label, spent in meter.stop().items()}


async def measured(
    stack: Stack,
    groups: dict[str, list[int]],
    expected: dict[str, Any],
    feed: Callable[[], Awaitable[T]],
) -> tuple[T, float, dict[str, float], float]:
    """Run ``feed`` and wait for the quiet ledger under the CPU meter: what ``feed`` returned, the wall seconds
    (first publish → last change), CPU seconds per process tree and the driver's CPU seconds. The driver's
    polling backend is counted with the driver, not with PostgreSQL."""
    probe = await asyncpg.connect(stack.postgres.dsn)
    meter = cpu.CpuMeter(groups)
    driver_started = cpu.self_seconds()
    probe_started = backend_seconds(probe)
    meter.start()
    started = time.monotonic()
    try:
        fed = await feed()
        await quiet_ledger(stack, expected, probe=probe)
        seconds = time.monotonic() - started - QUIET
        spent = meter.stop()
        polling = backend_seconds(probe) - probe_started
    finally:
        await probe.close()
    spent["postgres"] -= polling
    return fed, seconds, spent, cpu.self_seconds() - driver_started + polling


async def run_once(stack: Stack, claims: int, workers: int, load: Load) -> Result:
    prefix = f"{'b' if load.rate is None else 'p'}{workers}w{claims}"
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
        # The probe reads output topics no operator reads: it logs in as the broker's admin.
        admin = stack.settings("admin")
        starts = await end_offsets(admin, [OFFSETS, REMITTANCES, CLAIMS])
        groups = cpu.stack_groups(stack)
        idle = await idle_rate(groups)
        if PGSTAT:
            await pgstat.reset(stack.postgres.dsn)
        load_before = cpu.load_average()
        window = await measured(stack, groups, expected, lambda: publish_feed(settings, out, feed, load))
        (sent, feed_seconds), seconds, spent, driver = window
        load_after = cpu.load_average()
        rss = {label: vm_hwm(pid) for label, pid in stack.services.items()}
        stamps = await read_stamps(admin, starts)
        if PGSTAT:
            tenants = expected["tenants"].values()
            await pgstat.report(
                stack.postgres.dsn,
                sum(t["claim_payments"] for t in tenants),
                ROOT / f"pgstat-{prefix}-{time.strftime('%H%M%S')}.json",
            )
        conn = await asyncpg.connect(stack.postgres.dsn)
        try:
            diffs = await compare(conn, out)
            breaches = 0
            for tenant in expected["tenants"]:
                breaches += len(await ledger_check.check(conn, tenant))
        finally:
            await conn.close()
    offsets, posted, claimed = stamps[OFFSETS], stamps[REMITTANCES], stamps[CLAIMS]
    latencies = [
        (ts - sent[trace]) / 1000 for trace, times in offsets.items() if trace in sent for ts in times
    ]
    after_intake = [
        (ts - min(posted[trace])) / 1000
        for trace, times in offsets.items()
        if trace in posted
        for ts in times
    ]
    to_claims = [(max(times) - sent[trace]) / 1000 for trace, times in claimed.items() if trace in sent]
    tenants = expected["tenants"].values()
    return Result(
        workers,
        stack.brokers,
        load,
        sum(t["claim_payments"] for t in tenants),
        sum(sum(t["plb_pairs_by_bucket"].values()) for t in tenants),
        seconds,
        feed_seconds,
        latencies,
        after_intake,
        to_claims,
        rss,
        diffs,
        breaches,
        spent,
        driver,
        idle,
        load_before,
        load_after,
    )


def _percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 1 else [0.0] * 99


def _latency(name: str, values: list[float], what: str) -> str:
    q = _percentiles(values)
    return f"{name:<18} p50 {q[49]:.2f} s   p95 {q[94]:.2f} s   p99 {q[98]:.2f} s   max {max(values, default=0):.2f} s   ({len(values):,} {what})"


def show_cpu(r: Result) -> None:
    """CPU-ms per 1 000 claim payments of every process tree, per stage and in total; *above idle* subtracts
    what the tree spends doing nothing (measured for 5 s before the first publish) over the same window, which
    matters when a loaded machine stretches the window."""
    per_k = 1e6 / r.claims
    window = r.seconds + QUIET
    by_service: dict[str, float] = {}
    for label, seconds in r.cpu_seconds.items():
        service = label.rpartition("-")[0] if label.rpartition("-")[0] in SERVICES else label
        by_service[service] = by_service.get(service, 0.0) + seconds
    total = sum(r.cpu_seconds.values())
    idle_total = sum(r.idle_cpu_per_second.values())
    print(
        f"CPU (first publish → quiet, {window:,.1f} s; load average before {r.load_before}, after "
        f"{r.load_after})"
    )
    print(
        f"  {'process':<14} {'CPU s':>8} {'ms / 1 000 claims':>18} {'share':>6} {'idle ms/s':>10} "
        f"{'above idle, ms / 1 000':>23}"
    )
    for label in sorted(r.cpu_seconds, key=lambda k: (k in ("kafka", "postgres"), k)):
        seconds = r.cpu_seconds[label]
        idle = r.idle_cpu_per_second.get(label, 0.0)
        print(
            f"  {label:<14} {seconds:>8.2f} {seconds * per_k:>18,.0f} {seconds / total if total else 0:>6.0%} "
            f"{idle * 1000:>10.1f} {max(0.0, seconds - idle * window) * per_k:>23,.0f}"
        )
    if len(by_service) < len(r.cpu_seconds):
        print("  per stage      " + "   ".join(f"{k} {v * per_k:,.0f}" for k, v in by_service.items()))
    net = max(0.0, total - idle_total * window)
    print(
        f"  {'total':<14} {total:>8.2f} {total * per_k:>18,.0f} {'':>6} {idle_total * 1000:>10.1f} "
        f"{net * per_k:>23,.0f}"
    )
    print(
        f"  → {total * 1000 / r.claims:.2f} ms of CPU per claim payment ({net * 1000 / r.claims:.2f} above the "
        f"idle floor); target ≤ 1.2"
    )
    print(
        f"  bench driver (publishing, webhook receiver, its PostgreSQL backend's polling; not counted) "
        f"{r.driver_cpu_seconds:.2f} s = "
        f"{r.driver_cpu_seconds * per_k:,.0f} ms / 1 000 claims"
    )


def show(r: Result) -> None:
    print(f"\n== {r.workers} worker(s) per stage, {r.brokers} Kafka broker(s), {r.load.name} ==")
    print(
        f"claim payments     {r.claims:>9,}   PLB pairs {r.pairs:,}   wall {r.seconds:,.1f} s (first publish → quiet)"
    )
    if r.load.rate is None:
        print(
            f"throughput         {r.claims / r.seconds:>9,.0f} claim payments/s   {r.pairs / r.seconds:,.1f} PLB pairs/s"
        )
    else:
        print(
            f"feed               {r.claims / r.feed_seconds:>9,.0f} claim payments/s offered over "
            f"{r.feed_seconds:,.1f} s (asked {r.load.rate:g}/s); last offset {r.seconds - r.feed_seconds:,.1f} s "
            "after the last publish"
        )
    print(_latency("publish→claims", r.to_claims, "transactions"))
    print(_latency("publish→offset", r.latencies, "offset events"))
    print(_latency("posted→offset", r.after_intake, "offset events"))
    print("peak RSS (VmHWM)   " + "   ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(r.rss_kib.items())))
    show_cpu(r)
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
    rate = float(os.environ["BENCH_RATE"]) if os.environ.get("BENCH_RATE") else None
    seconds = float(os.environ.get("BENCH_SECONDS", "300"))
    load = Load(rate, seconds if rate else None)
    paced_claims = str(round(rate * seconds)) if rate else "200000"
    claims = int(os.environ.get("BENCH_CLAIMS", paced_claims))
    workers = [int(w) for w in os.environ.get("BENCH_WORKERS", "1" if rate else "1,2").split(",")]
    brokers = int(os.environ.get("BENCH_BROKERS", "1"))
    knobs = {k: v for k, v in sorted(os.environ.items()) if KNOBS.match(k)}
    print(
        f"end-to-end bench: ~{claims:,} claim payments, {load.name}, workers {workers}, {brokers} Kafka broker(s); "
        f"stack under "
        f"{ROOT / 'stack'}; load average {cpu.load_average()}"
        + (f"; settings {' '.join(f'{k}={v}' for k, v in knobs.items())}" if knobs else ""),
        flush=True,
    )
    stack = await asyncio.to_thread(
        start_stack,
        ROOT / "stack",
        "bench",
        durable=False,
        brokers=brokers,
        postgres_settings=(*(pgstat.SERVER_SETTINGS if PGSTAT else ()), *PG_SETTINGS),
    )
    failed = False
    try:
        for count in workers:
            result = await run_once(stack, claims, count, load)
            show(result)
            failed |= bool(result.differences or result.breaches)
    finally:
        await asyncio.to_thread(stack.stop)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
