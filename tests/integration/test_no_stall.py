"""The stream never stalls on one input (issue 16): each input that used to be retried forever, then a
normal file behind it on the same partition, which must post within seconds. Real Kafka, PostgreSQL and services.

- one claim whose event exceeds the broker's message cap (200 000 CAS adjustments: a 17 MB event from a 2 MB
  file): the transaction is refused as ``too_large`` naming file, transaction and claim ordinal; the rest of the
  file posts;
- a file of 2 000 unbalanced transactions: 2 000 small dead letters naming the file kept once, instead of 2 000
  copies of it; ``dlt show --raw`` and ``dlt replay`` read it back;
- dead letters that would exceed the cap: a payer file close to it (kept once, named) and, on a stage's
  topic, a message close to it (the record names its source position instead of copying it).
"""

import asyncio
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from x12_builder import Adj, Claim, Transaction, build_835, parse_all, remittances

from cli import dlt
from cli.local_infra import Stack
from cli.runner import Pipeline
from contracts.topics import CLAIM_PAYMENTS, INTAKE
from services.intake import domain
from services.intake.publish import raw_file_message
from shared.dlt_refs import OmittedBody, RawFileRef
from shared.failures import record_size
from shared.kafka import MAX_MESSAGE_BYTES
from shared.kafka_security import client_kwargs
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration
WITHIN = 30.0
"""Seconds a normal file behind a bad input may take to post (before the fix: never)."""


def _normal(isa13: str, trace: str) -> bytes:
    return build_835(
        Transaction(claims=[Claim(f"PCN{trace}", charge_override=Decimal(40))], trace=trace), isa13=isa13
    ).encode()


async def _warm_up(pipeline: Pipeline, folder: Path, tenant: str, isa13: str) -> None:
    """A normal file through every stage first, so the timing below measures the stall, not the start-up."""
    path = folder / f"warm-{isa13}.835"
    path.write_bytes(_normal(isa13, f"EFTWARM{isa13}"))
    await pipeline.ingest([path], tenant)
    await _posts_within(pipeline.stack.postgres.dsn, tenant, f"EFTWARM{isa13}", time.monotonic(), within=120)


async def _posts_within(dsn: str, tenant: str, trace: str, started: float, within: float = WITHIN) -> float:
    """Seconds from ``started`` until the remittance of ``trace`` and its claim are in the ledger."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            claims = await conn.fetchval(
                """SELECT count(*) FROM detection.claims c JOIN intake.remittances r
                       ON r.tenant_id = c.tenant_id AND r.remittance_id = c.remittance_id
                    WHERE r.tenant_id = $1 AND r.trace_number = $2""",
                tenant,
                trace,
            )
            elapsed = time.monotonic() - started
            if claims:
                return elapsed
            assert elapsed < within, (
                f"the normal file {trace} did not post within {within}s: the stream stalled"
            )
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def _send(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(**client_kwargs(settings), max_request_size=MAX_MESSAGE_BYTES, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _intake_letters(settings: Settings, tenant: str, file_name: str) -> list[dlt.DeadLetter]:
    records = dlt.select(await dlt.read_dead_letters(settings, INTAKE.dlt), tenant_id=tenant)
    return [r for r in records if r.location.get("file") == file_name]


async def _cli_bytes(stack: Stack, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        cwd=REPO_ROOT,
        env=stack.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out


async def test_a_claim_too_large_for_a_message_is_refused_and_the_next_file_posts(
    stack: Stack, stack_settings: Settings, tenant: str, tmp_path: Path
) -> None:
    huge = Claim(
        "PCNHUGE", adjustments=[Adj("CO", "45", Decimal("0.01"))] * 200_000, charge_override=Decimal(2010)
    )
    content = build_835(
        Transaction(
            claims=[Claim("PCNSMALL", charge_override=Decimal(25)), huge], trace="EFTHUGE", st02="0001"
        ),
        Transaction(claims=[Claim("PCNBESIDE", charge_override=Decimal(30))], trace="EFTBESIDE", st02="0002"),
        isa13="000000301",
    ).encode()
    (tmp_path / "huge.835").write_bytes(content)
    (tmp_path / "after.835").write_bytes(_normal("000000302", "EFTAFTER1"))
    async with Pipeline(stack) as pipeline:
        await _warm_up(pipeline, tmp_path, tenant, "000000300")
        await pipeline.ingest([tmp_path / "huge.835"], tenant)
        started = time.monotonic()
        await pipeline.ingest([tmp_path / "after.835"], tenant)  # same sender, same partition, behind it
        await _posts_within(stack.postgres.dsn, tenant, "EFTAFTER1", started)
        await _posts_within(stack.postgres.dsn, tenant, "EFTBESIDE", started)  # the rest of the file posted

    [letter] = await _intake_letters(stack_settings, tenant, "huge.835")
    assert letter.reason == "too_large"
    assert letter.location["claim_ordinal"] == "2" and letter.location["st02"] == "0001"
    assert letter.location["segment_id"] == "CLP" and "claim #2 (200000 adjustments" in letter.error
    assert "PCNHUGE" not in str(letter.summary(error_width=None))
    assert len(letter.value) < 1000 and isinstance(letter.reference, RawFileRef)
    assert await dlt.load_original(stack_settings, letter) == content
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        posted = await conn.fetch("SELECT trace_number FROM intake.remittances WHERE tenant_id = $1", tenant)
        rejected = await conn.fetchval("SELECT reason FROM intake.rejections WHERE tenant_id = $1", tenant)
    finally:
        await conn.close()
    assert sorted(r["trace_number"] for r in posted) == ["EFTAFTER1", "EFTBESIDE", "EFTWARM000000300"]
    assert rejected == "too_large"


async def test_many_bad_transactions_write_small_dead_letters_naming_the_file_once(
    stack: Stack, stack_settings: Settings, tenant: str, tmp_path: Path
) -> None:
    count = 2_000
    bad = [
        Transaction(
            claims=[Claim(f"PCNBAD{i}", charge_override=Decimal(10))],
            trace=f"EFTBAD{i:05d}",
            st02=f"{i:04d}",
            bpr02_override=Decimal(11),  # BPR02 11 against claims paying 10: unbalanced
        )
        for i in range(1, count + 1)
    ]
    content = build_835(*bad, isa13="000000401").encode()
    (tmp_path / "bad.835").write_bytes(content)
    (tmp_path / "after.835").write_bytes(_normal("000000402", "EFTAFTER2"))
    async with Pipeline(stack) as pipeline:
        await _warm_up(pipeline, tmp_path, tenant, "000000400")
        await pipeline.ingest([tmp_path / "bad.835"], tenant)
        started = time.monotonic()
        await pipeline.ingest([tmp_path / "after.835"], tenant)
        await _posts_within(stack.postgres.dsn, tenant, "EFTAFTER2", started)

        letters = await _intake_letters(stack_settings, tenant, "bad.835")
        assert len(letters) == count and {r.reason for r in letters} == {"unbalanced"}
        sizes = [len(r.value) for r in letters]
        assert max(sizes) < 1000, "each record names the file instead of copying it"
        assert sum(sizes) < len(content)  # all of them together are smaller than one copy used to be
        refs = {r.reference for r in letters}
        assert {(ref.sha256, ref.stored_in) for ref in refs if isinstance(ref, RawFileRef)} == {
            (letters[0].reference.sha256, "intake.raw_files")  # type: ignore[union-attr]
        }
        by_transaction = {r.location["transaction_index"]: r for r in letters}
        some = by_transaction["1234"]
        assert isinstance(some.reference, RawFileRef) and some.reference.byte_range is not None
        start, end = some.reference.byte_range
        assert content[start:end].startswith(b"ST*835*1234*") and content[start:end].endswith(b"*1234~")

        # Staff read the file back from where it is kept, as they did when the record carried it.
        assert await _cli_bytes(stack, "dlt", "show", some.position, "--raw") == content
        shown = (await _cli_bytes(stack, "dlt", "show", some.position, "--content")).decode()
        assert "transaction #1234 at bytes" in shown and "EFTBAD01234" in shown and "EFTBAD01235" not in shown
        conn = await asyncpg.connect(stack.postgres.dsn)
        try:
            stored = await conn.fetch("SELECT size_bytes FROM intake.raw_files WHERE tenant_id = $1", tenant)
        finally:
            await conn.close()
        assert [r["size_bytes"] for r in stored] == [len(content)]

        # Replaying every record sends the file once (it is parsed whole anyway); still unbalanced: again DLT.
        outcomes = await dlt.replay(stack_settings, INTAKE.dlt, tenant_id=tenant, reason="unbalanced")
        assert len(outcomes) == count and {o.status for o in outcomes} == {"replayed"}
        assert len({(o.target_partition, o.target_offset) for o in outcomes}) == 1
        deadline = time.monotonic() + 60
        while len(await _intake_letters(stack_settings, tenant, "bad.835")) < 2 * count:
            assert time.monotonic() < deadline, "the replayed file was not processed again"
            await asyncio.sleep(1)


async def test_dead_letters_that_would_exceed_the_cap_stay_small_and_the_next_file_posts(
    stack: Stack, stack_settings: Settings, tenant: str, tmp_path: Path
) -> None:
    after = _normal("000000502", "EFTAFTER3")
    (tmp_path / "after.835").write_bytes(after)
    [parsed] = remittances(parse_all(after))
    account = domain.account_of(tenant, parsed).encode()
    # A payer file of no known format just under the cap: its dead letter plus headers would not fit.
    filler = b"NOT A PAYER FILE " * ((MAX_MESSAGE_BYTES * 3 // 4 - 2048) // 17)
    file_key, file_value = raw_file_message(filler, "near-cap.txt", tenant, "cli")
    assert MAX_MESSAGE_BYTES - 4096 < record_size(file_key, file_value, []) <= MAX_MESSAGE_BYTES
    # A message on a stage's topic just under the cap, on the partition the normal file's claim will take.
    # The producer takes it (its estimate is under the cap); with the DLT's headers it would not fit.
    head = b"\x00not an envelope " + uuid.uuid4().bytes
    junk = head + b"\x00" * (MAX_MESSAGE_BYTES - len(head) - 200)
    assert (
        MAX_MESSAGE_BYTES - 200
        < DefaultRecordBatchBuilder.estimate_size_in_bytes(account, junk, [])
        <= (MAX_MESSAGE_BYTES)
    )
    # The same file sender as the normal file: the intake partition it waits behind.
    same_sender_key, _ = raw_file_message(after, "after.835", tenant, "cli")
    assert same_sender_key != file_key  # not X12: keyed by the file; send it on the normal file's key
    async with Pipeline(stack) as pipeline:
        await _warm_up(pipeline, tmp_path, tenant, "000000500")
        await _send(stack_settings, INTAKE.name, same_sender_key, file_value)
        await _send(stack_settings, CLAIM_PAYMENTS.name, account, junk)
        started = time.monotonic()
        await pipeline.ingest([tmp_path / "after.835"], tenant)
        await _posts_within(stack.postgres.dsn, tenant, "EFTAFTER3", started)

    [file_letter] = await _intake_letters(stack_settings, tenant, "near-cap.txt")
    assert file_letter.reason == "unknown_format"
    assert isinstance(file_letter.reference, RawFileRef) and len(file_letter.value) < 1000
    assert await dlt.load_original(stack_settings, file_letter) == filler
    [junk_letter] = [
        r
        for r in await dlt.read_dead_letters(stack_settings, CLAIM_PAYMENTS.dlt)
        if r.key == account and r.headers["service"] == "detection"
    ]
    assert junk_letter.reason == "invalid_message"
    omitted = junk_letter.reference
    assert isinstance(omitted, OmittedBody) and omitted.kept_at == "source_position"
    assert omitted.size_bytes == len(junk) and len(junk_letter.value) < 1000
    assert await dlt.load_original(stack_settings, junk_letter) == junk  # read back from the source position
    [outcome] = await dlt.replay(
        stack_settings, CLAIM_PAYMENTS.dlt, positions=[(junk_letter.partition, junk_letter.offset)]
    )
    assert outcome.status == "replayed"  # the original bytes, re-sent from where they are
