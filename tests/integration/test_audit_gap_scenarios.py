"""Stories from the second domain audit, through every stage's real handler and the real PostgreSQL ledger.

- A claim with one service line denied as a duplicate (CO-18, paid 0) while its other lines are paid owes
  nothing back.
- A recoupment during an appeal pause is flagged once, by the stage that owns the pause facts (interest).
- A negative ``WO`` without a reference (a deferral against an unknown overpayment) reaches staff.
- A positive ``FB`` without the reference its negative ``FB`` used still closes that forwarding balance.
- ``WO`` + ``72`` after staff recorded the refund check is that refund, acknowledged: counted once.
"""

from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from harness import InProcessPipeline, remit
from harness import run_files as run
from x12_builder import Adj, Claim, Service

from cli import ledger_check, letters, matching_views
from contracts.envelope import parse_envelope
from contracts.events import AlertRaised
from contracts.topics import ALERTS, STAFF_ACTIONS
from services.matching import store as matching_store
from shared.messages import Outgoing

pytestmark = pytest.mark.integration
D = Decimal
PAYER, PAYEE = "01312", "1234567893"


def staff(tenant: str, kind: str, reference: str, on: date, amount: str | None = None) -> Outgoing:
    """A staff action as ``offsetstream action`` publishes it."""
    key, value = letters.action_event(
        kind,  # type: ignore[arg-type]
        tenant_id=tenant,
        payer_id=PAYER,
        payee_id=PAYEE,
        reference=reference,
        effective=on,
        entered_by="staff-1",
        amount=D(amount) if amount is not None else None,
    )
    return Outgoing(STAFF_ACTIONS.name, key, value)


def alerts(pipeline: InProcessPipeline, kind: str) -> list[AlertRaised]:
    return [
        alert
        for alert in (
            parse_envelope(o.value, AlertRaised).payload for o in pipeline.published if o.topic == ALERTS.name
        )
        if alert.kind == kind
    ]


async def assert_ledger_consistent(ledger: asyncpg.Connection, tenant: str) -> None:
    breaches = await ledger_check.check(ledger, tenant)
    assert breaches == [], breaches


async def receivables(ledger: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await ledger.fetch(
        "SELECT * FROM matching.receivables WHERE tenant_id = $1 ORDER BY reference", tenant
    )
    return rows


# --- 1. line-level duplicate denial ---------------------------------------------------------------------------


async def test_a_line_denied_as_a_duplicate_on_a_paid_claim_opens_no_receivable(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    # One claim, two lines: the first denied CO-18 (paid 0), the second paid 120.00 after CO-45.
    claim = Claim(
        "PCN-DUP1",
        [
            Service(D("100.00"), [Adj("CO", "18", D("100.00"))], procedure=("HC", "99213")),
            Service(D("150.00"), [Adj("CO", "45", D("30.00"))], procedure=("HC", "93000")),
        ],
        icn="7770000000001",
    )
    await run(ledger, tenant, remit("EFTD00001", "20260803", claims=[claim]))
    assert await receivables(ledger, tenant) == []
    await assert_ledger_consistent(ledger, tenant)


async def test_the_same_claim_paid_twice_is_still_a_duplicate_payment(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    first = Claim("PCN-DUP2", [Service(D("200.00"), [Adj("CO", "45", D("40.00"))])], icn="7770000000002")
    again = Claim("PCN-DUP2", [Service(D("200.00"), [Adj("CO", "45", D("40.00"))])], icn="7770000000003")
    await run(
        ledger,
        tenant,
        remit("EFTD00002", "20260803", claims=[first]),
        remit("EFTD00003", "20260817", claims=[again]),
    )
    [row] = await receivables(ledger, tenant)
    assert (row["reference"], row["principal"], row["duplicate"]) == ("7770000000003", D("160.00"), True)


# --- 2. one alert for one recoupment during an appeal pause -----------------------------------------------------


async def test_a_recoupment_during_an_appeal_pause_raises_one_alert(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    pipeline = await run(ledger, tenant, remit("EFTP00001", "20260601", ("WO", "FCNP", "-400.00")))
    # Staff file a timely appeal; the payer recoups anyway.
    pipeline.send(staff(tenant, "appeal_filed", "FCNP", date(2026, 6, 20)))
    recoupment = remit("EFTP00002", "20260715", ("WO", "FCNP", "100.00"))
    pipeline.feed(recoupment, "recoupment.835")
    await pipeline.run()
    # The same file again changes nothing.
    pipeline.feed(recoupment, "recoupment-again.835")
    await pipeline.run()
    # A replay re-publishes the same bytes, so count distinct alerts: one fact, one id.
    [flag] = {a.alert_id: a for a in alerts(pipeline, "recoupment_during_pause")}.values()
    assert (flag.reference, flag.amount, flag.observed_on) == ("FCNP", D("100.00"), date(2026, 7, 15))
    kinds = await ledger.fetch(
        "SELECT kind FROM notification.notifications WHERE tenant_id = $1 AND kind = 'recoupment_during_pause'",
        tenant,
    )
    assert len(kinds) == 1
    [row] = await receivables(ledger, tenant)
    recovered = row["principal_recovered"] + row["interest_recovered"]
    assert (row["status"], recovered) == ("paused", D("100.00"))
    await assert_ledger_consistent(ledger, tenant)


# --- 3. a deferral without a reference ------------------------------------------------------------------------


async def test_a_deferral_without_a_reference_is_raised_to_staff_and_queued(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    pipeline = await run(ledger, tenant, remit("EFTW00001", "20260803", ("WO", None, "-75.00")))
    [flag] = alerts(pipeline, "deferral_without_reference")
    assert (flag.reference, flag.amount, flag.observed_on) == ("EFTW00001", D("75.00"), date(2026, 8, 3))
    assert "PCN" not in flag.detail
    # Staff see it in the work queue, with what they must do, and as an action notification.
    [item] = await matching_views.unmatched(ledger, tenant)
    assert (item["reason_code"], item["amount"], item["unmatched_amount"]) == ("WO", D("-75.00"), D("0.00"))
    assert item["to_identify"] == D("75.00")
    assert "identify" in item["reason"]
    notified = await ledger.fetch(
        "SELECT severity FROM notification.notifications WHERE tenant_id = $1 AND kind = $2",
        tenant,
        "deferral_without_reference",
    )
    assert [n["severity"] for n in notified] == ["action"]
    # A deferral with a reference opens its receivable and is not in the queue.
    await run(ledger, tenant, remit("EFTW00002", "20260804", ("WO", "FCNW", "-50.00")))
    assert len(await matching_views.unmatched(ledger, tenant)) == 1
    await assert_ledger_consistent(ledger, tenant)


# --- 4. forwarding balances applied without their reference ---------------------------------------------------


async def forwarding(ledger: asyncpg.Connection, tenant: str) -> dict[str, tuple[Decimal, Decimal]]:
    rows = await ledger.fetch(
        "SELECT reference, opened_amount, applied_amount FROM matching.forwarding_balances WHERE tenant_id = $1",
        tenant,
    )
    return {r["reference"]: (r["opened_amount"], r["applied_amount"]) for r in rows}


async def stale(ledger: asyncpg.Connection, tenant: str) -> list[str]:
    rows = await matching_store.stale_forwarding_balances(ledger, date(2099, 1, 1))
    return [r["reference"] for r in rows if r["tenant_id"] == tenant]


@pytest.mark.parametrize("reference", [None, "PAYERPMT0099"])
async def test_a_positive_fb_without_the_opening_reference_closes_the_oldest_open_balance(
    ledger: asyncpg.Connection, tenant: str, reference: str | None
) -> None:
    await run(
        ledger,
        tenant,
        # Two balances carried forward: 100.00 (older), then 250.00.
        remit("EFTF00001", "20260803", ("WO", "FCNF1", "600.00"), ("FB", "EFTF00001", "-100.00")),
        remit("EFTF00002", "20260810", ("WO", "FCNF2", "750.00"), ("FB", "EFTF00002", "-250.00")),
        # Applied later under another reference (or none): 200.00 only fits the 250.00 balance.
        remit("EFTF00003", "20260817", ("FB", reference, "200.00")),
        # 100.00 fits the older balance first.
        remit("EFTF00004", "20260824", ("FB", reference, "100.00")),
    )
    assert await forwarding(ledger, tenant) == {
        "EFTF00001": (D("100.00"), D("100.00")),
        "EFTF00002": (D("250.00"), D("200.00")),
    }
    assert await stale(ledger, tenant) == ["EFTF00002"]
    await assert_ledger_consistent(ledger, tenant)


async def test_a_positive_fb_naming_its_balance_still_applies_to_it(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFTG00001", "20260803", ("FB", "EFTG00001", "-100.00")),
        remit("EFTG00002", "20260810", ("FB", "EFTG00002", "-100.00")),
        remit("EFTG00003", "20260817", ("FB", "EFTG00002", "100.00")),
    )
    assert await forwarding(ledger, tenant) == {
        "EFTG00001": (D("100.00"), D("0.00")),
        "EFTG00002": (D("100.00"), D("100.00")),
    }
    assert await stale(ledger, tenant) == ["EFTG00001"]


async def test_positive_fbs_that_arrive_before_their_balance_move_to_it_when_it_opens(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(
        ledger,
        tenant,
        remit("EFTH00001", "20260803", ("FB", "EFTH00001", "-300.00")),
        # Files out of order: the FB applying EFTH00002's balance comes first, and an open balance (EFTH00001)
        # could take it, so it is applied there for now.
        remit("EFTH00003", "20260817", ("FB", "EFTH00002", "120.00")),
        # One without a reference that nothing open can take yet.
        remit("EFTH00004", "20260818", ("FB", None, "400.00")),
        # The balance both belong to opens late: they move to it.
        remit("EFTH00002", "20260810", ("FB", "EFTH00002", "-520.00")),
    )
    assert await forwarding(ledger, tenant) == {
        "EFTH00001": (D("300.00"), D("0.00")),
        "EFTH00002": (D("520.00"), D("520.00")),
    }
    assert await stale(ledger, tenant) == ["EFTH00001"]
    await assert_ledger_consistent(ledger, tenant)


# --- 5. the payer acknowledges a refund staff already recorded -------------------------------------------------


@pytest.mark.parametrize("order", ["wo_first", "72_first"])
async def test_wo_and_72_after_the_refund_was_recorded_is_that_refund_counted_once(
    ledger: asyncpg.Connection, tenant: str, order: str
) -> None:
    pipeline = await run(ledger, tenant, remit("EFTR00001", "20260803", ("WO", "FCNR", "-300.00")))
    # Staff mail the refund check and record it.
    pipeline.send(staff(tenant, "refund_sent", "FCNR", date(2026, 8, 20), "300.00"))
    await pipeline.run()
    # The payer's next remittance acknowledges it: WO + 72 on the same FCN, net 0.
    pairs = [("WO", "FCNR", "300.00"), ("72", "FCNR", "-300.00")]
    pipeline.feed(remit("EFTR00002", "20260901", *(pairs if order == "wo_first" else pairs[::-1])))
    await pipeline.run()
    [row] = await receivables(ledger, tenant)
    assert (row["status"], row["principal_recovered"], row["refunded"]) == (
        "refunded",
        D("300.00"),
        D("300.00"),
    )
    assert await matching_views.unmatched(ledger, tenant) == []
    buckets = await ledger.fetch(
        """SELECT reason_code, bucket, unmatched_amount FROM matching.adjustments
           WHERE tenant_id = $1 AND trace_number = 'EFTR00002' ORDER BY reason_code""",
        tenant,
    )
    assert [(b["reason_code"], b["bucket"], b["unmatched_amount"]) for b in buckets] == [
        ("72", "refund_acknowledged", D("0.00")),
        ("WO", "refund_acknowledged", D("0.00")),
    ]
    kinds = [
        r["kind"]
        for r in await ledger.fetch(
            "SELECT kind FROM notification.notifications WHERE tenant_id = $1 AND kind LIKE 'unmatched%'",
            tenant,
        )
    ]
    # With the WO first it is parked until its 72 arrives; staff then hear it is resolved. With the 72 first
    # the WO is never parked.
    assert sorted(kinds) == (
        ["unmatched_recovery", "unmatched_recovery_resolved"] if order == "wo_first" else []
    )
    await assert_ledger_consistent(ledger, tenant)
