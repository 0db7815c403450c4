"""The walking skeleton, end to end: five services as separate processes on the real broker and database.

Story: a Medicare remittance defers recovery of two overpayments (negative WO), a later one recovers the first
(positive WO), a third recovers the second while paying less than it withholds (negative FB carries the rest),
a fourth applies the forwarding balance and defers a third overpayment, which stays open and accrues interest.
"""

from decimal import Decimal

import asyncpg
import pytest

from cli.local_infra import Stack
from cli.runner import Pipeline
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "examples" / "835"
TODAY = "2026-11-23"


async def _rows(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_example_feed_flows_through_all_five_services(stack: Stack, tenant: str) -> None:
    async with Pipeline(stack, env={"OFFSETSTREAM_TODAY": TODAY}) as pipeline:
        assert await pipeline.ingest([EXAMPLES], tenant) == 4
        await pipeline.settle(timeout=150)
        # Feed the same files again: nothing may change (dedupe by remittance identity).
        await pipeline.ingest([EXAMPLES], tenant)
        await pipeline.settle(timeout=90)
        receiver = pipeline.receiver

    dsn = stack.postgres.dsn
    remittances = await _rows(dsn, "SELECT trace_number FROM intake.remittances WHERE tenant_id = $1", tenant)
    assert len(remittances) == 4

    receivables = {
        r["reference"]: r
        for r in await _rows(dsn, "SELECT * FROM matching.receivables WHERE tenant_id = $1", tenant)
    }
    assert set(receivables) == {"2226183201000", "FCN26080300017", "FCN26100500042"}

    # The deferred WO of 2026-08-03 is recovered on 2026-08-24 (day 21): no interest, balance 0.
    deferred = receivables["2226183201000"]
    assert deferred["principal"] == Decimal("100.00")
    assert deferred["principal_recovered"] == Decimal("100.00")
    assert deferred["interest_accrued"] == Decimal("0.00")
    assert deferred["status"] == "settled"

    # FCN26080300017 (300.00, determined 2026-08-03) is recouped on 2026-09-14, day 42. Period 1's interest at
    # 11.50 % came due on day 31: 300 × 0.115 × 30/360 = 2.875 → 2.88, and the recoupment pays it first:
    # 2.88 interest + 297.12 principal. The 2.88 principal left accrues 0.03 in periods 2 and 3 (due 10-03 and
    # 11-02): 2.94 interest accrued, 2.94 owed on 2026-11-23.
    late = receivables["FCN26080300017"]
    assert (late["principal_recovered"], late["interest_recovered"]) == (Decimal("297.12"), Decimal("2.88"))
    assert late["interest_accrued"] == Decimal("2.94")

    # FCN26100500042 (75.00, determined 2026-10-05) is open on 2026-11-23 (day 49): one period, 0.72.
    open_one = receivables["FCN26100500042"]
    assert open_one["principal_recovered"] == Decimal("0.00")
    assert open_one["interest_accrued"] == Decimal("0.72")

    # The forwarding balance opened by the 2026-09-14 remittance is applied on 2026-10-05.
    fb = await _rows(dsn, "SELECT * FROM matching.forwarding_balances WHERE tenant_id = $1", tenant)
    assert [(r["reference"], r["opened_amount"], r["applied_amount"]) for r in fb] == [
        ("EFT260914001", Decimal("180.00"), Decimal("180.00"))
    ]

    # Every PLB pair is in exactly one bucket; the L6 interest is non-offset.
    buckets = await _rows(
        dsn,
        """SELECT reason_code, bucket, unmatched_amount FROM matching.adjustments
                                  WHERE tenant_id = $1 ORDER BY payment_date, segment_ordinal, pair_index""",
        tenant,
    )
    assert [(b["reason_code"], b["bucket"]) for b in buckets] == [
        ("WO", "deferral"),
        ("WO", "deferral"),
        ("WO", "allocated"),
        ("L6", "non_offset"),
        ("WO", "allocated"),
        ("FB", "forwarding_balance"),
        ("FB", "forwarding_balance"),
        ("WO", "deferral"),
    ]
    assert all(b["unmatched_amount"] == 0 for b in buckets)

    # Notifications were written and each delivered exactly once to the local webhook receiver.
    notes = await _rows(
        dsn, "SELECT notification_id, status FROM notification.notifications WHERE tenant_id = $1", tenant
    )
    assert len(notes) >= 8
    assert {n["status"] for n in notes} == {"delivered"}
    assert {str(n["notification_id"]) for n in notes} <= set(receiver.deliveries)
    assert receiver.duplicates == 0
    assert receiver.bad_signatures == 0
