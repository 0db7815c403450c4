"""A multi-account payer feed for scale and fault tests, and a tenant-independent snapshot of the ledger.

Six provider accounts spread over the partitions; each has an overpayment deferred, partly and then fully
recovered, a recovery that arrives before its own deferral, and a non-offset L6. The snapshot leaves out ids,
so the ledgers of two tenants fed the same files can be compared row for row.
"""

import zlib
from decimal import Decimal
from pathlib import Path

import asyncpg
from x12_builder import Claim, Plb, PlbPair, Service, Transaction, build_835

D = Decimal


def write_feed(folder: Path, accounts: int = 6) -> list[Path]:
    """Write the feed's 835 files into a folder, in business order; return their paths."""
    paths = []
    for a in range(accounts):
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
            path = folder / f"{a}-{i}-{trace}.835"
            path.write_text(build_835(txn, isa13=isa13))
            paths.append(path)
    return paths


async def snapshot(dsn: str, tenant: str) -> dict[str, list[tuple[object, ...]]]:
    """The tenant's ledger without ids: receivables, PLB pairs and allocations."""
    conn = await asyncpg.connect(dsn)
    try:
        queries = {
            "remittances": """SELECT trace_number, total_paid FROM intake.remittances WHERE tenant_id = $1
                              ORDER BY 1""",
            "receivables": """SELECT reference, principal, principal_recovered, interest_accrued,
                                     interest_recovered, status FROM matching.receivables
                              WHERE tenant_id = $1 ORDER BY reference""",
            "adjustments": """SELECT trace_number, segment_ordinal, pair_index, bucket, unmatched_amount
                              FROM matching.adjustments WHERE tenant_id = $1 ORDER BY 1, 2, 3""",
            "allocations": """SELECT a.trace_number, l.to_interest, l.to_principal FROM matching.allocations l
                              JOIN matching.adjustments a USING (tenant_id, adjustment_id)
                              WHERE l.tenant_id = $1 ORDER BY 1, 2, 3""",
        }
        return {
            name: [tuple(r.values()) for r in await conn.fetch(sql, tenant)] for name, sql in queries.items()
        }
    finally:
        await conn.close()
