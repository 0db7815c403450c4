"""Scale-out: two matching workers splitting the partitions produce the same ledger as one worker."""

import zlib
from pathlib import Path

import pytest
from feeds import snapshot, write_feed

from cli.local_infra import Stack
from cli.runner import Pipeline

pytestmark = pytest.mark.integration


async def test_two_matching_workers_give_the_same_ledger_as_one(stack: Stack, tmp_path: Path) -> None:
    write_feed(tmp_path)
    results = {}
    for label, workers in (("one", 1), ("two", 2)):
        tenant = f"scale-{label}-{zlib.crc32(str(tmp_path).encode()):x}"
        async with Pipeline(stack, workers={"matching": workers}) as pipeline:
            await pipeline.ingest([tmp_path], tenant)
            await pipeline.settle(timeout=180)
        results[label] = await snapshot(stack.postgres.dsn, tenant)
    assert len(results["one"]["receivables"]) == 12
    assert {r[5] for r in results["one"]["receivables"]} == {"settled"}
    assert results["two"] == results["one"]
