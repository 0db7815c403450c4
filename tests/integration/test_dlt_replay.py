"""Dead letters, replay, the drop folder and `offsetstream files` against the five real services.

Story: a payer's good 835 arrives through the drop folder, a second 835 whose BPR02 does not balance arrives
through `offsetstream ingest`, and something that is not an envelope at all lands on remit.claim-payments.v2
(and on v1, which detection still consumes: both share one DLT, each record replays to its own source).
Staff list both dead-letter topics, look at the rejected 835 without printing it, replay everything twice (the
ledger must not change), and re-feed the good file (`offsetstream files` must say it posted nothing).
"""

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from cli import dlt
from cli.dropfolder import DropFolder
from cli.local_infra import Stack
from cli.main import fetch_files
from cli.runner import Pipeline
from contracts.envelope import parse_envelope
from contracts.events import RawFileReceived
from contracts.topics import CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, INTAKE
from shared.dlt_refs import RawFileRef
from shared.kafka_security import client_kwargs
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

# One Medicare remittance (trace EFT…001): CLP04 200 − PLB −100 = BPR02 300. Balanced by construction.
GOOD_835 = b"""ISA*00*          *00*          *ZZ*01312          *ZZ*1234567893     *260803*1200*^*00501*000000101*0*P*:~
GS*HP*01312*1234567893*20260803*1200*101*X*005010X221A1~
ST*835*0001~
BPR*I*300*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999999999*DA*654321*20260803~
TRN*1*EFT260803001*1512345678~
DTM*405*20260802~
N1*PR*MEDICARE PART B*XV*01312~
PER*BL*PROVIDER SERVICES*TE*8005551212~
N1*PE*SUNRISE CLINIC*XX*1234567893~
LX*1~
CLP*PCN1001*1*300*200*0*MB*ICN000001~
CAS*CO*45*100~
PLB*1234567893*20261231*WO:FCN111*-100~
SE*12*0001~
GE*1*101~
IEA*1*000000101~
"""
# Another remittance (new trace and control numbers) whose BPR02 says 301: rejected as `unbalanced`.
BROKEN_835 = (
    GOOD_835.replace(b"000000101", b"000000201")
    .replace(b"*101*", b"*201*")
    .replace(b"GE*1*101", b"GE*1*201")
    .replace(b"EFT260803001", b"EFT260803002")
    .replace(b"BPR*I*300*", b"BPR*I*301*")
)


async def _count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _dlt_count(
    settings: Settings, topic: str, *, tenant: str | None = None, key: bytes | None = None
) -> int:
    records = dlt.select(await dlt.read_dead_letters(settings, topic), tenant_id=tenant)
    return sum(key is None or r.key == key for r in records)


async def _eventually(count: Callable[[], Awaitable[int]], expected: int, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (got := await count()) < expected:
        assert asyncio.get_running_loop().time() < deadline, f"{got} < {expected} after {within}s"
        await asyncio.sleep(0.5)


async def _cli(stack: Stack, *args: str) -> str:
    """Run ``offsetstream`` as staff would, against the test stack."""
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
    return out.decode()


async def test_dead_letters_can_be_listed_shown_and_replayed_harmlessly(
    stack: Stack, stack_settings: Settings, tenant: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.835").write_bytes(GOOD_835)
    (tmp_path / "broken.835").write_bytes(BROKEN_835)
    garbage_key = f"garbage-{uuid.uuid4().hex}".encode()
    old_garbage_key = f"garbage-v1-{uuid.uuid4().hex}".encode()
    remittances = "SELECT count(*) FROM intake.remittances WHERE tenant_id = $1"
    claims = "SELECT count(*) FROM detection.claims WHERE tenant_id = $1"

    async with Pipeline(stack) as pipeline:
        # The drop folder: first look sees the file, second look (unchanged) publishes and moves it.
        folder = DropFolder(inbox, tenant, settings=stack_settings, interval=0.1)
        try:
            assert (await folder.poll_once()).waiting == ["good.835"]
            assert (await folder.poll_once()).published == ["good.835"]
        finally:
            await folder.close()
        assert (inbox / "processed" / "good.835").read_bytes() == GOOD_835
        assert not (inbox / "good.835").exists()

        assert await pipeline.ingest([tmp_path / "broken.835"], tenant) == 1
        producer = AIOKafkaProducer(**client_kwargs(stack_settings))
        await producer.start()
        try:
            await producer.send_and_wait(CLAIM_PAYMENTS.name, value=b"{not an envelope", key=garbage_key)
            await producer.send_and_wait(CLAIM_PAYMENTS_V1.name, value=b"{not v1 either", key=old_garbage_key)
        finally:
            await producer.stop()
        await pipeline.settle(timeout=90, quiet=3)

        dsn = stack.postgres.dsn
        assert await _count(dsn, remittances, tenant) == 1
        claims_before = await _count(dsn, claims, tenant)
        assert claims_before == 1

        # `dlt list` logic: exactly one intake record of this tenant, `unbalanced`, with the original bytes.
        [rejected] = dlt.select(await dlt.read_dead_letters(stack_settings, INTAKE.dlt), tenant_id=tenant)
        assert rejected.reason == "unbalanced"
        assert rejected.source_topic == "remit.intake.v1"
        assert rejected.headers["service"] == "intake"
        assert rejected.location["segment_id"] == "BPR"
        # The record names the file kept once in intake.raw_files (no copy of it), and reads it back.
        kept = rejected.reference
        assert isinstance(kept, RawFileRef) and (kept.file_name, kept.tenant_id) == ("broken.835", tenant)
        assert kept.byte_range is not None and len(rejected.value) < 1000
        assert await dlt.load_original(stack_settings, rejected) == BROKEN_835
        start, end = kept.byte_range
        assert BROKEN_835[start:end].startswith(b"ST*835*0001~") and BROKEN_835[start:end].endswith(
            b"SE*12*0001~"
        )
        original = parse_envelope(await dlt.replay_value(stack_settings, rejected), RawFileReceived).payload
        assert (original.file_name, original.content) == ("broken.835", BROKEN_835)
        assert "PCN1001" not in json.dumps(rejected.summary(error_width=None))  # no claim data in the row

        # ... and the claim-payments DLT holds the garbage with its source headers.
        [junk] = [
            r
            for r in await dlt.read_dead_letters(stack_settings, CLAIM_PAYMENTS.dlt)
            if r.key == garbage_key and r.headers["service"] == "detection"
        ]
        assert (junk.reason, junk.value, junk.headers["service"]) == (
            "invalid_message",
            b"{not an envelope",
            "detection",
        )
        assert junk.source_topic == "remit.claim-payments.v2"
        [old_junk] = [
            r
            for r in await dlt.read_dead_letters(stack_settings, CLAIM_PAYMENTS_V1.dlt)
            if r.key == old_garbage_key and r.headers["service"] == "detection"
        ]
        assert (old_junk.topic, old_junk.reason, old_junk.value) == (
            "remit.claim-payments.dlt",
            "invalid_message",
            b"{not v1 either",
        )
        assert old_junk.source_topic == "remit.claim-payments.v1"
        assert junk.headers["source_partition"].isdigit() and junk.headers["source_offset"].isdigit()

        # The CLI, as staff run it: headers only unless --content.
        listing = await _cli(stack, "dlt", "list", "--tenant", tenant)
        assert rejected.position in listing and "unbalanced" in listing
        shown = await _cli(stack, "dlt", "show", rejected.position)
        assert "reason     unbalanced" in shown and "body not shown" in shown and "CLP*" not in shown
        assert "CLP*PCN1001" in await _cli(stack, "dlt", "show", rejected.position, "--content")

        # Replay the rejected file twice and the garbage once; re-feed the good file, identical and re-sent.
        for _ in range(2):
            [outcome] = await dlt.replay(
                stack_settings, INTAKE.dlt, positions=[(rejected.partition, rejected.offset)]
            )
            assert (outcome.status, outcome.target_topic) == ("replayed", "remit.intake.v1")
        [again] = await dlt.replay(
            stack_settings, CLAIM_PAYMENTS.dlt, positions=[(junk.partition, junk.offset)]
        )
        assert again.status == "replayed"
        [old_again] = await dlt.replay(
            stack_settings, CLAIM_PAYMENTS_V1.dlt, positions=[(old_junk.partition, old_junk.offset)]
        )
        assert (old_again.status, old_again.target_topic) == ("replayed", "remit.claim-payments.v1")
        # The replayed copy on the source topic says where it came from.
        reader = AIOKafkaConsumer(**client_kwargs(stack_settings), enable_auto_commit=False)
        await reader.start()
        try:
            source = TopicPartition(CLAIM_PAYMENTS.name, again.target_partition or 0)
            reader.assign([source])
            reader.seek(source, again.target_offset or 0)
            copy = await asyncio.wait_for(reader.getone(source), 10)
        finally:
            await reader.stop()
        assert (copy.key, copy.value) == (garbage_key, b"{not an envelope")
        assert dict(copy.headers)["replayed_from"] == f"remit.claim-payments.dlt:{junk.position}".encode()
        assert await pipeline.ingest([inbox / "processed" / "good.835"], tenant) == 1
        (tmp_path / "good-resent.835").write_bytes(GOOD_835 + b"\n")  # same remittance, different bytes
        assert await pipeline.ingest([tmp_path / "good-resent.835"], tenant) == 1
        # Replays are duplicates (ops.processed_events does not grow), so wait for their visible effects first.
        await _eventually(lambda: _dlt_count(stack_settings, INTAKE.dlt, tenant=tenant), 3)
        await _eventually(lambda: _dlt_count(stack_settings, CLAIM_PAYMENTS.dlt, key=garbage_key), 2)
        await _eventually(lambda: _dlt_count(stack_settings, CLAIM_PAYMENTS.dlt, key=old_garbage_key), 2)
        await pipeline.settle(timeout=90, quiet=3)

    # Idempotence: nothing new in the ledger; the still-broken file is on the DLT again, once per replay.
    assert await _count(dsn, remittances, tenant) == 1
    assert await _count(dsn, claims, tenant) == claims_before
    assert await _count(dsn, "SELECT count(*) FROM intake.rejections WHERE tenant_id = $1", tenant) == 1
    intake_dlt = dlt.select(await dlt.read_dead_letters(stack_settings, INTAKE.dlt), tenant_id=tenant)
    assert [r.reason for r in intake_dlt] == ["unbalanced"] * 3
    junk_dlt = [
        r
        for r in await dlt.read_dead_letters(stack_settings, CLAIM_PAYMENTS.dlt)
        if r.key == garbage_key and r.headers["service"] == "detection"
    ]
    assert len(junk_dlt) == 2
    assert junk_dlt[1].headers["source_offset"] == str(
        again.target_offset
    )  # the replayed copy, rejected again

    # `offsetstream files`: the re-sent copy posted nothing and says so; the identical re-feed added no row.
    files = {r["file_name"]: r for r in await fetch_files(stack_settings, tenant)}
    assert set(files) == {"good.835", "broken.835", "good-resent.835"}
    assert files["good.835"]["source"] == "drop_folder" and files["good.835"]["posted"] == 1
    assert (files["broken.835"]["rejected"], files["broken.835"]["posted"]) == (1, 0)
    resent = files["good-resent.835"]
    assert (resent["transactions"], resent["duplicates"], resent["posted"]) == (1, 1, 0)
    table = await _cli(stack, "files", "--tenant", tenant)
    assert "already posted earlier: nothing new" in table
