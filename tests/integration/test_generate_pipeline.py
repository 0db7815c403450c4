"""A generated feed through the real handlers and ledger ends exactly as the generator's own plan says.

Two tenants × two payers × three providers over 30 days: deferrals, letters, duplicates, refunds, forwarding
balances, lumps, unknown recoveries, out-of-order and twice-delivered files — fed in the generator's order,
each drained before the next, then compared with ``expected.json`` and audited by the ledger check.
"""

import uuid
from pathlib import Path

import asyncpg
import pytest
from harness import InProcessPipeline

from cli import ledger_check, letters
from cli.local_infra import Stack
from contracts.topics import LETTERS
from devtools.generate import Spec, compare, feed_order, generate
from shared.messages import Outgoing

pytestmark = pytest.mark.integration


async def test_generated_feed_ends_as_planned(stack: Stack, tmp_path: Path) -> None:
    spec = Spec(tenants=2, payers=2, providers=3, days=30, seed=7, tenant_prefix=f"gen{uuid.uuid4().hex[:8]}")
    generate(spec, tmp_path)
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        pipelines: dict[str, InProcessPipeline] = {}
        for item in feed_order(tmp_path):
            pipeline = pipelines.setdefault(item.tenant, InProcessPipeline(conn, item.tenant))
            if item.kind == "letters":
                for entry in letters.read_import(tmp_path / item.path):
                    key, value = letters.to_event(entry, item.tenant, "generator")
                    pipeline.send(Outgoing(LETTERS.name, key, value))
            else:
                pipeline.feed((tmp_path / item.path).read_bytes(), Path(item.path).name)
            await pipeline.run()
        assert not [m for p in pipelines.values() for m in p.dead_letters]
        assert await compare(conn, tmp_path) == []
        for tenant in pipelines:
            assert await ledger_check.check(conn, tenant) == []
    finally:
        await conn.close()
