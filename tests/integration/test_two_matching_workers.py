"""Scale-out: two matching workers splitting the partitions produce the same ledger as one worker.

Six provider accounts (payees) spread over the three partitions; each has an overpayment deferred, partly and
then fully recovered, and one recovery that arrives before its deferral. The same files go through a pipeline
with one matching worker (tenant A) and one with two (tenant B).
"""

import zlib
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from x12_builder import Claim, Plb, PlbPair, Service, Transaction, build_835

from shared.local_infra import Stack
from shared.runner import Pipeline

pytestmark = pytest.mark.integration
D = Decimal


def write_feed(folder: Path) -> None:
    for a in range(6):
        npi = f"20000000{a:02d}"
        plan = [
            ("20260601", "WO", f"FCN-{a}", D("-300.00")),
            ("20260615", "WO", f"FCN-{a}", D("100.00")),
            ("20260701", "WO", f"FCN-{a}", D("200.00")),
            ("20260702", "WO", f"LATE-{a}", D("50.00")),
            ("20260703", "WO", f"LATE-{a}", D("-50.00")),
            ("20260704", "L6", None, D("-1.25")),
        ]
        for i, (paid_on, code, ref, amount) in enumerate(plan):
            trace = f"W{a}{i}"
            txn = Transaction(
                claims=[Claim(f"P{trace}", [Service(D("400.00"))], icn=f"8{a}{i:03d}")],
                plbs=[Plb([PlbPair(code, ref, amount)], provider_id=npi)],
                trace=trace,
                payment_date=paid_on,
                payee_npi=npi,
            )
            isa13 = f"{zlib.crc32(trace.encode()) % 999_999_999:09d}"
            (folder / f"{a}-{i}-{trace}.835").write_text(build_835(txn, isa13=isa13))


async def ledger_rows(dsn: str, tenant: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        queries = {
            "receivables": """SELECT reference, principal, principal_recovered, interest_recovered, status
                              FROM matching.receivables WHERE tenant_id = $1 ORDER BY reference""",
            "adjustments": """SELECT trace_number, segment_ordinal, pair_index, bucket, unmatched_amount
                              FROM matching.adjustments WHERE tenant_id = $1 ORDER BY 1, 2, 3""",
            "allocations": """SELECT a.trace_number, l.to_interest, l.to_principal FROM matching.allocations l
                              JOIN matching.adjustments a USING (tenant_id, adjustment_id)
                              WHERE l.tenant_id = $1 ORDER BY 1""",
        }
        return {
            name: [tuple(r.values()) for r in await conn.fetch(sql, tenant)] for name, sql in queries.items()
        }
    finally:
        await conn.close()


async def test_two_matching_workers_give_the_same_ledger_as_one(stack: Stack, tmp_path: Path) -> None:
    write_feed(tmp_path)
    results = {}
    for label, workers in (("one", 1), ("two", 2)):
        tenant = f"scale-{label}-{zlib.crc32(str(tmp_path).encode()):x}"
        async with Pipeline(stack, workers={"matching": workers}) as pipeline:
            await pipeline.ingest([tmp_path], tenant)
            await pipeline.settle(timeout=180)
        results[label] = await ledger_rows(stack.postgres.dsn, tenant)
    assert len(results["one"]["receivables"]) == 12
    assert {r[4] for r in results["one"]["receivables"]} == {"settled"}
    assert results["two"] == results["one"]
