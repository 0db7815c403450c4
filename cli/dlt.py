"""Dead-letter topics for staff: list what was rejected and why, look at one record, replay after a fix.

Every stage sends input it cannot process to ``<noun>.dlt`` with the original key and bytes and PHI-free headers
(``reason``, ``error``, ``service``, ``source_topic``/``_partition``/``_offset``, ``location.*``; see
:func:`shared.batches.dead_letter_message`). This module reads those topics without a consumer group — looking
at a DLT must never move anybody's committed offsets, and every look starts from the beginning — and re-publishes
records to the topic named in their headers. Replaying is safe to repeat: the intake dedupes remittances by
identity and every stage dedupes input event ids (``ops.processed_events``), so a second replay changes nothing.

Intake's records do not copy the payer file: the file is kept once in PostgreSQL (``intake.raw_files``) and the
record's body names it (SHA-256, transaction, byte range; ``shared.dlt_refs``). A record whose original would not
fit the broker's cap names its source position instead. ``show --content/--raw`` and ``replay`` read the bytes
back from where they are kept, so staff see and re-drive exactly what arrived. DLT topics are created with a
retention (``OFFSETSTREAM_DLT_RETENTION_DAYS``, 30 by default): resolve or replay a record within it.

Bodies are not shown unless asked for: an 835 carries patient names and member ids (NM1*QC, NM1*IL), and what
a command prints ends up in terminal scroll-back, screen shares and support tickets. Headers are PHI-free by
construction, so listing and ``show`` without ``--content`` are always safe to paste.

A little over 500 lines on purpose: reading a record, finding its original bytes and replaying it are one
chain over one record type (:class:`DeadLetter`), and the console's files-and-rejects page uses it whole.
"""

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from contracts.envelope import parse_envelope
from contracts.events import RawFileReceived
from contracts.topics import INTAKE, TOPICS, all_topic_names, dlt_name
from services.intake.publish import raw_file_message
from shared import db, kafka_security, phi
from shared.dlt_refs import OmittedBody, RawFileRef, read_body
from shared.kafka import MAX_MESSAGE_BYTES, topic_partitions
from shared.settings import Settings

DEFAULT_DLT = INTAKE.dlt
REPLAYED_FROM = "replayed_from"
_POSITION = re.compile(r"^(\d+):(\d+)$")
_FETCH_TIMEOUT_MS = 1000
_IDLE_LIMIT_S = 30.0


def dlt_topics() -> list[str]:
    """Every dead-letter topic offsetstream creates (the only topics these commands accept)."""
    return [name for name in all_topic_names() if name.endswith(".dlt")]


def check_dlt_topic(topic: str) -> str:
    """The topic name if it is one of ours, else ``ValueError`` naming the valid ones (typos fail loudly)."""
    if topic not in dlt_topics():
        raise ValueError(f"{topic!r} is not a dead-letter topic; choose one of: {', '.join(dlt_topics())}")
    return topic


def parse_position(text: str) -> tuple[int, int]:
    """``"PARTITION:OFFSET"`` → ``(partition, offset)``, as printed by ``offsetstream dlt list``."""
    match = _POSITION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (for example 0:12)")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic: where it sits, its PHI-free headers and the original key/bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def position(self) -> str:
        """``PARTITION:OFFSET``, the handle staff pass to ``show`` and ``replay``."""
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        """Bounded label such as ``unbalanced`` or ``invalid_message``."""
        return self.headers.get("reason", "")

    @property
    def error(self) -> str:
        """The stage's PHI-free explanation."""
        return self.headers.get("error", "")

    @property
    def source_topic(self) -> str:
        """Where the original record was consumed from (and where a replay sends it back)."""
        return self.headers.get("source_topic", "")

    @property
    def location(self) -> dict[str, str]:
        """``location.*`` headers without the prefix: file, transaction, segment, element…"""
        return {k.removeprefix("location."): v for k, v in self.headers.items() if k.startswith("location.")}

    @property
    def reference(self) -> RawFileRef | OmittedBody | None:
        """What the body points at instead of holding the original (``shared.dlt_refs``), or None. A stored
        file is honoured only on intake's DLT, where only intake writes."""
        found = read_body(self.value)
        if isinstance(found, RawFileRef) and self.topic != DEFAULT_DLT:
            return None
        return found

    @property
    def tenant_id(self) -> str | None:
        """The tenant of an envelope record (not PHI); None when the bytes are not an envelope at all."""
        try:
            tenant = json.loads(self.value).get("tenant_id")
        except (ValueError, AttributeError):
            return None
        return tenant if isinstance(tenant, str) else None

    def summary(self, error_width: int | None = 80) -> dict[str, Any]:
        """The listing row: everything but the body (JSON-safe)."""
        error = self.error
        if error_width is not None and len(error) > error_width:
            error = error[: error_width - 1] + "…"
        return {
            "position": self.position,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "reason": self.reason,
            "error": error,
            "service": self.headers.get("service", ""),
            "tenant_id": self.tenant_id,
            "source_topic": self.source_topic,
            "source_partition": self.headers.get("source_partition", ""),
            "source_offset": self.headers.get("source_offset", ""),
            "location": self.location,
            "replayed_from": self.headers.get(REPLAYED_FROM),
            "size_bytes": len(self.value),
            **_body_summary(self.reference),
        }

    def readable_body(self, original: bytes | None = None) -> str:
        """The body for a human: the payer file inside an intake envelope, else the bytes as text or hex.
        For a record naming a stored file, ``original`` is that file (see :func:`load_original`): the
        transaction's bytes are shown when its range is known, else the whole file."""
        ref = self.reference
        if isinstance(ref, RawFileRef) and original is not None:
            where = (
                f"payer file {ref.file_name!r} ({ref.size_bytes} bytes, sha256 {ref.sha256}, {ref.stored_in})"
            )
            if ref.byte_range is not None:
                start, end = ref.byte_range
                return (
                    f"# {where}, transaction #{ref.transaction_index} at bytes {start}-{end}:\n"
                    + _text_or_hex(original[start:end])
                )
            return f"# {where}:\n{_text_or_hex(original)}"
        if isinstance(ref, OmittedBody) and original is not None:
            return f"# original at the source position ({ref.size_bytes} bytes):\n{_text_or_hex(original)}"
        try:
            raw = parse_envelope(self.value, RawFileReceived).payload
        except (ValidationError, ValueError):
            return _text_or_hex(self.value)
        return (
            f"# payer file {raw.file_name!r} ({len(raw.content)} bytes, source {raw.source}) "
            f"inside a RawFileReceived envelope:\n{_text_or_hex(raw.content)}"
        )


def _body_summary(ref: RawFileRef | OmittedBody | None) -> dict[str, Any]:
    if isinstance(ref, RawFileRef):
        kept = {
            "sha256": ref.sha256,
            "file_name": ref.file_name,
            "size_bytes": ref.size_bytes,
            "stored_in": ref.stored_in,
            "transaction_index": ref.transaction_index,
            "byte_range": list(ref.byte_range) if ref.byte_range else None,
        }
        return {"body": "raw_file_reference", "raw_file": kept}
    if isinstance(ref, OmittedBody):
        return {"body": f"omitted ({ref.kept_at})", "raw_file": None}
    return {"body": "original", "raw_file": None}


class OriginalMissing(LookupError):
    """The bytes a record names are no longer where it says (file row deleted, source topic past retention)."""


async def load_raw_file(settings: Settings, ref: RawFileRef) -> bytes:
    """The exact bytes of a stored payer file, checked against its SHA-256."""
    conn = await db.connect(settings)
    try:
        content = await conn.fetchval(
            "SELECT content FROM intake.raw_files WHERE tenant_id = $1 AND sha256 = $2",
            ref.tenant_id,
            ref.sha256,
        )
    finally:
        await conn.close()
    if content is None or hashlib.sha256(content).hexdigest() != ref.sha256:
        raise OriginalMissing(
            f"payer file sha256 {ref.sha256} of tenant {ref.tenant_id} is not in {ref.stored_in}"
        )
    return bytes(content)


async def _source_record(settings: Settings, record: DeadLetter) -> bytes:
    """The original message at the record's source position (for a body omitted as too large)."""
    try:
        partition, offset = int(record.headers["source_partition"]), int(record.headers["source_offset"])
    except (KeyError, ValueError):
        raise OriginalMissing(f"{record.position}: no source position to read the original from") from None
    tp = TopicPartition(record.source_topic, partition)
    consumer = _consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        ends: dict[TopicPartition, int] = await consumer.end_offsets([tp])
        beginnings: dict[TopicPartition, int] = await consumer.beginning_offsets([tp])
        if not beginnings[tp] <= offset < ends[tp]:
            raise OriginalMissing(f"{record.source_topic}[{partition}]@{offset} is no longer on the broker")
        consumer.seek(tp, offset)
        found = [r for r in await _drain(consumer, ends, {tp: offset + 1}) if r.offset == offset]
    finally:
        await consumer.stop()
    if not found:
        raise OriginalMissing(f"{record.source_topic}[{partition}]@{offset} holds no record")
    return found[0].value


async def load_original(settings: Settings, record: DeadLetter) -> bytes:
    """The original bytes a record is about: the stored payer file for intake's records, the message at the
    source position for a body omitted as too large, else the record's own value."""
    ref = record.reference
    if isinstance(ref, RawFileRef):
        return await load_raw_file(settings, ref)
    if isinstance(ref, OmittedBody):
        return await _source_record(settings, record)
    return record.value


async def replay_value(settings: Settings, record: DeadLetter) -> bytes:
    """The message a replay sends to the source topic: the original message, rebuilt from the stored file
    (same event id and key as the first time) for a record naming one."""
    ref = record.reference
    if isinstance(ref, RawFileRef):
        content = await load_raw_file(settings, ref)
        _key, value = raw_file_message(content, ref.file_name, ref.tenant_id, ref.source, ref.format_hint)
        return value
    return await load_original(settings, record)


def _text_or_hex(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(data[i : i + 16].hex(" ") for i in range(0, len(data), 16))  # 16 bytes a line


def _to_dead_letter(record: Any) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value or b"",
        # Scrubbed again as they are read (shared.phi): a record dead-lettered before the scrubber existed
        # must not show its patients' names or numbers in a listing either.
        headers=dict(
            phi.dead_letter_headers(
                [(k, bytes(v or b"").decode("utf-8", errors="replace")) for k, v in (record.headers or ())],
                record.value or b"",
            )
        ),
    )


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    # No group_id: nothing is committed, no rebalance, and other readers of the DLT are not disturbed.
    return AIOKafkaConsumer(
        **kafka_security.client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES + 1024 * 1024,
        fetch_max_bytes=MAX_MESSAGE_BYTES + 1024 * 1024,
    )


async def _drain(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], stop_at: dict[TopicPartition, int]
) -> list[DeadLetter]:
    """Fetch from the assigned positions until each partition reaches ``stop_at`` (≤ its end offset).

    Fails after ``_IDLE_LIMIT_S`` without progress rather than hanging an operator's terminal.
    """
    found: list[DeadLetter] = []
    pending = {tp for tp in stop_at if await consumer.position(tp) < stop_at[tp]}
    idle_since = time.monotonic()
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=_FETCH_TIMEOUT_MS)
        for tp, records in batches.items():
            found += [_to_dead_letter(r) for r in records if r.offset < stop_at[tp]]
        still = {tp for tp in pending if await consumer.position(tp) < stop_at[tp]}
        if batches or still != pending:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > _IDLE_LIMIT_S:
            raise TimeoutError(f"no progress reading {sorted(str(tp) for tp in still)} up to {ends}")
        pending = still
    return found


async def read_dead_letters(
    settings: Settings, topic: str = DEFAULT_DLT, *, limit: int | None = None
) -> list[DeadLetter]:
    """Every record of a DLT from the beginning up to the end offsets seen at the start, oldest first.

    With ``limit`` only the newest ``limit`` records are returned: staff usually ask what failed lately.
    """
    check_dlt_topic(topic)
    consumer = _consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await _partitions(settings, topic))]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        found = await _drain(consumer, ends, ends)
    finally:
        await consumer.stop()
    found.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    if limit is not None:
        found = found[-limit:] if limit > 0 else []
    return found


async def _partitions(settings: Settings, topic: str) -> set[int]:
    """Partition ids of a topic (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(**kafka_security.client_kwargs(settings))
    await admin.start()
    try:
        return set((await topic_partitions(admin, [topic])).get(topic, []))
    finally:
        await admin.close()


async def fetch_dead_letters(
    settings: Settings, topic: str, positions: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], DeadLetter | None]:
    """The records at the given (partition, offset) positions; None for a position that holds no record."""
    check_dlt_topic(topic)
    wanted = sorted(set(positions))
    result: dict[tuple[int, int], DeadLetter | None] = dict.fromkeys(wanted)
    if not wanted:
        return result
    consumer = _consumer(settings)
    await consumer.start()
    try:
        known = await _partitions(settings, topic)
        for partition in sorted({p for p, _ in wanted if p in known}):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            ends: dict[TopicPartition, int] = await consumer.end_offsets([tp])
            offsets = [o for p, o in wanted if p == partition and o < ends[tp]]
            if not offsets:
                continue
            # From the first wanted offset to just past the last one: one fetch run per partition.
            consumer.seek(tp, min(offsets))
            for record in await _drain(consumer, ends, {tp: max(offsets) + 1}):
                if (record.partition, record.offset) in result:
                    result[(record.partition, record.offset)] = record
    finally:
        await consumer.stop()
    return result


@dataclass(frozen=True)
class ReplayOutcome:
    """What ``replay`` did with one DLT record."""

    position: str
    reason: str
    target_topic: str
    status: str  # "replayed", "would replay" (dry run) or "skipped: <why>"
    target_partition: int | None = None
    target_offset: int | None = None


def replay_target(record: DeadLetter) -> str | None:
    """The topic to send a record back to, or None when its headers do not name one of ours for this DLT.

    Only a topic whose dead-letter topic *is* the record's topic qualifies, so a record can never be steered
    onto an unrelated topic by a malformed header.
    """
    source = record.source_topic
    known = {t.name for t in TOPICS}
    if source in known and dlt_name(source) == record.topic:
        return source
    return None


def select(
    records: Iterable[DeadLetter], *, reason: str | None = None, tenant_id: str | None = None
) -> list[DeadLetter]:
    """Records matching every filter given (reason label, tenant of the envelope)."""
    return [
        r
        for r in records
        if (reason is None or r.reason == reason) and (tenant_id is None or r.tenant_id == tenant_id)
    ]


async def replay(
    settings: Settings,
    topic: str = DEFAULT_DLT,
    *,
    positions: Sequence[tuple[int, int]] = (),
    reason: str | None = None,
    tenant_id: str | None = None,
    replay_all: bool = False,
    dry_run: bool = False,
) -> list[ReplayOutcome]:
    """Re-publish DLT records' original key and bytes to their source topic, tagged ``replayed_from``.

    The bytes are read back from where the record says they are kept (``load_original``): a stored payer file
    is sent once per replay however many of its transactions' records are selected.

    Selection: the given positions, else every record matching ``reason``/``tenant_id``; with no selector at all
    ``replay_all`` must be set, so a bare command never floods a stage with a whole DLT. Records are sent in DLT
    order with the original key, so they land on the same partition as the first time (per-account order).
    """
    check_dlt_topic(topic)
    if not positions and reason is None and tenant_id is None and not replay_all:
        raise ValueError("say what to replay: PARTITION:OFFSET positions, --reason, --tenant or --all")
    if positions:
        found = await fetch_dead_letters(settings, topic, positions)
        outcomes = [
            ReplayOutcome(f"{p}:{o}", "", "", "skipped: no record at this position")
            for (p, o), rec in found.items()
            if rec is None
        ]
        records = select([r for r in found.values() if r is not None], reason=reason, tenant_id=tenant_id)
    else:
        outcomes = []
        records = select(await read_dead_letters(settings, topic), reason=reason, tenant_id=tenant_id)
    if not records:
        return outcomes
    producer = AIOKafkaProducer(
        **kafka_security.client_kwargs(settings),
        max_request_size=MAX_MESSAGE_BYTES,
        acks="all",
        enable_idempotence=True,
    )
    if not dry_run:
        await producer.start()
    # Records naming one stored file (its bad transactions) replay it once: the file is parsed whole anyway.
    files_sent: dict[tuple[str, str], ReplayOutcome] = {}
    try:
        for record in records:
            ref = record.reference
            same_file = (ref.tenant_id, ref.sha256) if isinstance(ref, RawFileRef) else None
            if same_file is not None and same_file in files_sent:
                sent = files_sent[same_file]
                outcomes.append(replace(sent, position=record.position, reason=record.reason))
                continue
            outcome = await _replay_one(settings, producer, topic, record, dry_run)
            outcomes.append(outcome)
            if same_file is not None and outcome.status == "replayed":
                files_sent[same_file] = outcome
    finally:
        if not dry_run:
            await producer.stop()
    return outcomes


async def _replay_one(
    settings: Settings, producer: AIOKafkaProducer, topic: str, record: DeadLetter, dry_run: bool
) -> ReplayOutcome:
    target = replay_target(record)
    if target is None:
        status = f"skipped: source_topic {record.source_topic!r} is not a topic feeding {topic}"
        return ReplayOutcome(record.position, record.reason, record.source_topic, status)
    if dry_run:
        return ReplayOutcome(record.position, record.reason, target, "would replay")
    try:
        value = await replay_value(settings, record)
    except OriginalMissing as missing:
        return ReplayOutcome(record.position, record.reason, target, f"skipped: {missing}")
    meta = await producer.send_and_wait(
        target,
        value=value,
        key=record.key or None,
        headers=[(REPLAYED_FROM, f"{topic}:{record.position}".encode())],
    )
    return ReplayOutcome(record.position, record.reason, target, "replayed", meta.partition, meta.offset)
