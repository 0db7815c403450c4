"""Matching, pattern by pattern, from hand-written 835 sequences through the real handlers and ledger.

Each test is one story a billing specialist would recognise; the in-process pipeline runs intake → detection
→ matching → interest → notification on the real PostgreSQL (Kafka routing simulated per topic).
"""

import uuid
from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from harness import InProcessPipeline, remit, run_files
from x12_builder import Claim, Service

from cli import ledger_check, letters
from contracts.topics import ALERTS, LETTERS, STAFF_ACTIONS
from shared.messages import Outgoing

pytestmark = pytest.mark.integration
D = Decimal


async def run(
    ledger: asyncpg.Connection, tenant: str, *files: bytes, seed: int | None = None
) -> InProcessPipeline:
    """Feed files one after another, each drained before the next arrives; every stage runs, interest too."""
    return await run_files(ledger, tenant, *files, seed=seed)


async def receivable(ledger: asyncpg.Connection, tenant: str, reference: str) -> asyncpg.Record:
    row = await ledger.fetchrow(
        "SELECT * FROM matching.receivables WHERE tenant_id = $1 AND reference = $2", tenant, reference
    )
    assert row is not None, f"no receivable {reference}"
    return row


async def pairs(ledger: asyncpg.Connection, tenant: str) -> list[tuple[str, str, Decimal]]:
    rows = await ledger.fetch(
        """SELECT reason_code, bucket, unmatched_amount FROM matching.adjustments WHERE tenant_id = $1
           ORDER BY payment_date, segment_ordinal, pair_index""",
        tenant,
    )
    return [(r["reason_code"], r["bucket"], r["unmatched_amount"]) for r in rows]


async def assert_ledger_consistent(ledger: asyncpg.Connection, tenant: str) -> None:
    breaches = await ledger_check.check(ledger, tenant)
    assert breaches == [], breaches


async def test_deferred_recovery_then_recovery_and_the_same_file_twice(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    deferral = remit("EFT100001", "20260803", ("WO", "FCN100", "-300.00"))
    recovery = remit("EFT100002", "20260824", ("WO", "FCN100", "300.00"))
    await run(ledger, tenant, deferral, recovery, deferral, recovery)
    row = await receivable(ledger, tenant, "FCN100")
    assert (row["principal"], row["principal_recovered"], row["status"]) == (
        D("300.00"),
        D("300.00"),
        "settled",
    )
    assert await pairs(ledger, tenant) == [("WO", "deferral", D("0.00")), ("WO", "allocated", D("0.00"))]
    await assert_ledger_consistent(ledger, tenant)


async def test_letter_first_then_wo_without_any_claim(ledger: asyncpg.Connection, tenant: str) -> None:
    entry = letters.LetterEntry(
        payer_id="01312",
        payee_id="1234567893",
        fcn="FCN200",
        amount=D("120.00"),
        letter_date=date(2026, 7, 1),
    )
    key, value = letters.to_event(entry, tenant, "staff-1")
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.send(Outgoing(LETTERS.name, key, value))
    pipeline.feed(remit("EFT200001", "20260815", ("WO", "FCN200", "120.00")))
    await pipeline.run()
    row = await receivable(ledger, tenant, "FCN200")
    assert row["determination_date"] == date(2026, 7, 1)
    # 45 days after the letter: one 30-day period of interest (120.00 × 11.50 % / 12 = 1.15) came due on day
    # 31, and the recoupment pays interest first, so 1.15 of principal is still owed.
    assert (row["interest_accrued"], row["interest_recovered"]) == (D("1.15"), D("1.15"))
    assert (row["principal_recovered"], row["status"]) == (D("118.85"), "partially_recovered")
    await assert_ledger_consistent(ledger, tenant)


async def test_recovery_arriving_before_its_receivable_is_parked_then_rematched(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    recovery = remit("EFT300002", "20260824", ("WO", "FCN300", "80.00"))
    await run(ledger, tenant, recovery)
    assert await pairs(ledger, tenant) == [("WO", "unmatched", D("80.00"))]
    await run(ledger, tenant, remit("EFT300001", "20260803", ("WO", "FCN300", "-80.00")))
    row = await receivable(ledger, tenant, "FCN300")
    assert (row["principal_recovered"], row["status"]) == (D("80.00"), "settled")
    assert ("WO", "allocated", D("0.00")) in await pairs(ledger, tenant)
    await assert_ledger_consistent(ledger, tenant)


async def test_recoupment_exceeding_the_payment_carries_a_forwarding_balance(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    claims = [Claim("PCN-FB", [Service(D("120.00"))], icn="9400001")]
    files = [
        remit("EFT400001", "20260803", ("WO", "FCN400", "-300.00")),
        remit(
            "EFT400002", "20260914", ("WO", "FCN400", "300.00"), ("FB", "EFT400002", "-180.00"), claims=claims
        ),
        remit("EFT400003", "20261005", ("FB", "EFT400002", "180.00")),
    ]
    await run(ledger, tenant, *files)
    total_paid = await ledger.fetchval(
        "SELECT total_paid FROM intake.remittances WHERE tenant_id = $1 AND trace_number = 'EFT400002'",
        tenant,
    )
    assert total_paid == D("0.00")
    fb = await ledger.fetchrow("SELECT * FROM matching.forwarding_balances WHERE tenant_id = $1", tenant)
    assert (fb["opened_amount"], fb["applied_amount"]) == (D("180.00"), D("180.00"))
    # Recouped on day 42: the 300.00 first pays the period of interest due on day 31 (2.88).
    row = await receivable(ledger, tenant, "FCN400")
    assert (row["interest_recovered"], row["principal_recovered"]) == (D("2.88"), D("297.12"))
    assert row["status"] == "partially_recovered"
    await assert_ledger_consistent(ledger, tenant)


@pytest.mark.parametrize("order", ["wo_first", "72_first"])
async def test_refund_acknowledged_closes_the_receivable_without_cash(
    ledger: asyncpg.Connection, tenant: str, order: str
) -> None:
    wo, ack = ("WO", "FCN500", "250.00"), ("72", "FCN500", "-250.00")
    plb = (wo, ack) if order == "wo_first" else (ack, wo)
    await run(
        ledger,
        tenant,
        remit("EFT500001", "20260803", ("WO", "FCN500", "-250.00")),
        remit("EFT500002", "20260901", *plb),
    )
    row = await receivable(ledger, tenant, "FCN500")
    assert (row["refunded"], row["principal_recovered"], row["status"]) == (
        D("250.00"),
        D("250.00"),
        "refunded",
    )
    buckets = {(code, bucket) for code, bucket, _ in (await pairs(ledger, tenant))[1:]}
    assert buckets == {("WO", "refund_acknowledged"), ("72", "refund_acknowledged")}
    kinds = await ledger.fetch("SELECT kind FROM matching.allocations WHERE tenant_id = $1", tenant)
    assert [k["kind"] for k in kinds] == ["refund"]
    await assert_ledger_consistent(ledger, tenant)


async def test_a_lump_wo_without_reference_settles_receivables_oldest_first(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFT600001", "20260601", ("WO", "FCN601", "-100.00")),
        remit("EFT600002", "20260701", ("WO", "FCN602", "-150.00"), ("WO", "FCN603", "-60.00")),
        remit("EFT600003", "20260710", ("WO", None, "200.00")),
    )
    first, second, third = [await receivable(ledger, tenant, r) for r in ("FCN601", "FCN602", "FCN603")]
    # Oldest first, interest first: FCN601 is 39 days old, so 0.96 of the lump pays its interest and 0.96 of
    # principal stays open; FCN602 (9 days, no interest yet) takes the remaining 100.00.
    assert (first["interest_recovered"], first["principal_recovered"]) == (D("0.96"), D("99.04"))
    assert first["status"] == "partially_recovered"
    assert (second["status"], second["principal_recovered"]) == ("partially_recovered", D("100.00"))
    assert second["interest_accrued"] == D("0.00")
    assert third["principal_recovered"] == D("0.00")
    allocations = await ledger.fetchval(
        "SELECT count(*) FROM matching.allocations WHERE tenant_id = $1", tenant
    )
    assert allocations == 2
    await assert_ledger_consistent(ledger, tenant)


async def test_partial_recoveries_and_two_recoupments_under_one_reference(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFT700001", "20260601", ("WO", "FCN700", "-100.00")),
        remit("EFT700002", "20260605", ("WO", "FCN700", "-50.00")),
        remit("EFT700003", "20260610", ("WO", "FCN700", "40.00")),
        remit("EFT700004", "20260615", ("WO", "FCN700", "70.00")),
    )
    row = await receivable(ledger, tenant, "FCN700")
    assert (row["principal"], row["principal_recovered"], row["status"]) == (
        D("150.00"),
        D("110.00"),
        "partially_recovered",
    )
    history = await ledger.fetch(
        "SELECT change FROM matching.receivable_history WHERE tenant_id = $1 ORDER BY seq", tenant
    )
    assert [h["change"] for h in history] == [
        "ReceivableOpened",
        "ReceivableIncreased",
        "ReceivableReduced",
        "ReceivableReduced",
    ]
    await assert_ledger_consistent(ledger, tenant)


async def test_a_recovery_above_the_open_balance_leaves_the_excess_unmatched(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFT800001", "20260601", ("WO", "FCN800", "-100.00")),
        remit("EFT800002", "20260615", ("WO", "FCN800", "130.00")),
    )
    assert (await pairs(ledger, tenant))[-1] == ("WO", "allocated", D("30.00"))
    await assert_ledger_consistent(ledger, tenant)


async def test_review_codes_go_to_the_work_queue_and_others_are_classified(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit(
            "EFT900001",
            "20260601",
            ("WU", None, "10.00"),
            ("OB", "1234", "20.00"),
            ("TL", "X1", "30.00"),
            ("L6", None, "-2.37"),
            ("CS", "ADJ", "5.00"),
            ("IR", None, "7.00"),
        ),
    )
    assert await pairs(ledger, tenant) == [
        ("WU", "unmatched", D("10.00")),
        ("OB", "unmatched", D("20.00")),
        ("TL", "unmatched", D("30.00")),
        ("L6", "non_offset", D("0.00")),
        ("CS", "non_offset", D("0.00")),
        ("IR", "non_offset", D("0.00")),
    ]
    await assert_ledger_consistent(ledger, tenant)


async def test_medicare_padded_reference_and_icn_forms_resolve(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    padded = "FCN26080300017     PCN1001"
    reversal = Claim("PCN1001", [Service(D("-250.00"))], status="22", icn="2226183201000")
    correction = Claim(
        "PCN1001", [Service(D("150.00"))], icn="2226183201001", original_reference="2226183201000"
    )
    await run(
        ledger,
        tenant,
        remit("EFTA00001", "20260601", ("WO", padded, "-300.00")),
        remit("EFTA00002", "20260602", claims=[reversal, correction, Claim("PCN2", [Service(D("400.00"))])]),
        remit("EFTA00003", "20260610", ("WO", f"{padded}", "300.00")),
        # a 15-digit FCN whose last 13 digits are the ICN of the reversed claim
        remit("EFTA00004", "20260612", ("WO", "102226183201000", "100.00")),
    )
    assert (await receivable(ledger, tenant, "FCN26080300017"))["status"] == "settled"
    icn_receivable = await receivable(ledger, tenant, "2226183201000")
    assert (icn_receivable["principal"], icn_receivable["status"]) == (D("100.00"), "settled")
    methods = await ledger.fetch(
        "SELECT match_method FROM matching.adjustments WHERE tenant_id = $1 AND amount > 0 ORDER BY payment_date",
        tenant,
    )
    assert [m["match_method"] for m in methods] == ["reference", "icn"]
    await assert_ledger_consistent(ledger, tenant)


async def test_a_recoupment_during_an_appeal_pause_is_flagged(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    from contracts.events import StaffActionRecorded
    from shared import envelopes
    from shared.ids import account_key, stable_id

    # Interest owns the pause facts and raises the alert (matching applies the money, never flags it).
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(remit("EFTB00001", "20260601", ("WO", "FCNB", "-400.00")))
    await pipeline.run()
    action = StaffActionRecorded(
        action_id=stable_id("appeal", tenant),
        kind="appeal_filed",
        payer_id="01312",
        payee_id="1234567893",
        reference="FCNB",
        effective_date=date(2026, 6, 20),
        entered_by="staff-1",
    )
    env = envelopes.build(
        action,
        event_id=action.action_id,
        event_type="AppealFiled",
        tenant_id=tenant,
        account_key=account_key(tenant, "01312", "1234567893"),
        causation_id="staff",
    )
    pipeline.send(Outgoing.event(STAFF_ACTIONS, env))
    pipeline.feed(remit("EFTB00002", "20260715", ("WO", "FCNB", "100.00")))
    await pipeline.run()
    row = await receivable(ledger, tenant, "FCNB")
    recovered = row["principal_recovered"] + row["interest_recovered"]  # interest first (day 31 came)
    assert (row["status"], row["paused"], recovered) == ("paused", True, D("100.00"))
    alerts = [o for o in pipeline.published if o.topic == ALERTS.name]
    assert len(alerts) == 1 and b"recoupment_during_pause" in alerts[0].value
    await assert_ledger_consistent(ledger, tenant)


async def test_an_unreferenced_lookalike_is_suggested_not_applied(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFTC00001", "20260601", ("WO", "FCN-C-1", "-90.00")),
        remit("EFTC00002", "20260602", ("WO", "FCN-C-2", "-90.00")),
        remit("EFTC00003", "20260701", ("WO", "UNKNOWN-REF", "90.00")),
    )
    row = await ledger.fetchrow(
        "SELECT bucket, suggestion FROM matching.adjustments WHERE tenant_id = $1 AND amount > 0", tenant
    )
    assert row["bucket"] == "unmatched"
    assert "score" in row["suggestion"]
    await assert_ledger_consistent(ledger, tenant)


@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4, 5])
async def test_reversal_and_lower_correction_is_recovered_by_claim_netting_unless_deferred(
    ledger: asyncpg.Connection, seed: int | None
) -> None:
    """Pattern 1 (netted, settled at once) and pattern 3 (negative WO defers it, a later WO recovers it), under
    any interleaving of the claim and PLB topics."""
    reversal = Claim("PCN-N", [Service(D("-250.00"))], status="22", icn="6660000000001")
    correction = Claim(
        "PCN-N", [Service(D("150.00"))], icn="6660000000002", original_reference="6660000000001"
    )
    filler = Claim("PCN-F", [Service(D("400.00"))], icn="6660000000009")
    netted, deferred = f"net-{seed}-{uuid.uuid4().hex[:6]}", f"def-{seed}-{uuid.uuid4().hex[:6]}"

    pipeline = InProcessPipeline(ledger, netted, seed=seed)
    pipeline.feed(remit("EFTN00001", "20260803", claims=[reversal, correction, filler]))
    await pipeline.run()
    row = await receivable(ledger, netted, "6660000000001")
    assert (row["principal"], row["principal_recovered"], row["status"]) == (
        D("100.00"),
        D("100.00"),
        "settled",
    )
    await assert_ledger_consistent(ledger, netted)

    pipeline = InProcessPipeline(ledger, deferred, seed=seed)
    pipeline.feed(
        remit(
            "EFTN00002", "20260803", ("WO", "6660000000001", "-100.00"), claims=[reversal, correction, filler]
        )
    )
    await pipeline.run()
    row = await receivable(ledger, deferred, "6660000000001")
    assert (row["principal_recovered"], row["status"]) == (D("0.00"), "open")
    pipeline.feed(remit("EFTN00003", "20260824", ("WO", "6660000000001", "100.00")))
    await pipeline.run()
    row = await receivable(ledger, deferred, "6660000000001")
    assert (row["principal_recovered"], row["status"]) == (D("100.00"), "settled")
    await assert_ledger_consistent(ledger, deferred)
