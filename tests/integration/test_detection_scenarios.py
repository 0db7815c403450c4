"""Detection, rule by rule, from hand-written 835 sequences through the real handlers and ledger.

The headline case: one overpayment seen three ways — a reversal + lower correction, Medicare's negative WO
deferring it, and the demand letter — must be one receivable of 100.00, not three, and replaying every input
changes nothing.
"""

from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from harness import InProcessPipeline
from harness import other_claim as other
from harness import remit_claims as remit
from x12_builder import Adj, Claim, Service

from cli import letters
from contracts.topics import LETTERS
from shared.messages import Outgoing

pytestmark = pytest.mark.integration
D = Decimal
ICN = "2226183201000"


async def evidence(ledger: asyncpg.Connection, tenant: str) -> list[tuple[str, str, Decimal]]:
    rows = await ledger.fetch(
        "SELECT rule, reference, amount FROM detection.evidence WHERE tenant_id = $1 ORDER BY rule, reference",
        tenant,
    )
    return [(r["rule"], r["reference"], r["amount"]) for r in rows]


async def test_one_overpayment_seen_three_ways_is_one_receivable(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    reversal = Claim("PCN1001", [Service(D("-250.00"))], status="22", icn=ICN)
    correction = Claim("PCN1001", [Service(D("150.00"))], icn="2226183201001", original_reference=ICN)
    first = remit("EFTM0001", "20260803", [reversal, correction, other("X1")], ("WO", ICN, "-100.00"))
    entry = letters.LetterEntry(
        payer_id="01312", payee_id="1234567893", fcn=ICN, amount=D("100.00"), letter_date=date(2026, 8, 10)
    )
    key, value = letters.to_event(entry, tenant, "staff-7")

    async def feed_all(pipeline: InProcessPipeline) -> None:
        pipeline.feed(first)
        await pipeline.run()
        pipeline.send(Outgoing(LETTERS.name, key, value))
        await pipeline.run()

    await feed_all(InProcessPipeline(ledger, tenant))
    receivables = await ledger.fetch("SELECT * FROM detection.receivables WHERE tenant_id = $1", tenant)
    assert [(r["reference"], r["principal"], r["determination_date"]) for r in receivables] == [
        (ICN, D("100.00"), date(2026, 8, 10))
    ]  # the letter's date is day 0
    assert await evidence(ledger, tenant) == [
        ("deferred_recovery", ICN, D("100.00")),
        ("demand_letter", ICN, D("100.00")),
        ("reversal_correction", ICN, D("100.00")),
    ]
    matching = await ledger.fetchrow(
        "SELECT principal FROM matching.receivables WHERE tenant_id = $1", tenant
    )
    assert matching["principal"] == D("100.00")

    before = await ledger.fetchval("SELECT count(*) FROM ops.processed_events")
    await feed_all(InProcessPipeline(ledger, tenant))  # replay every input: nothing changes
    assert await ledger.fetchval("SELECT count(*) FROM ops.processed_events") == before
    assert len(await evidence(ledger, tenant)) == 3


async def test_duplicate_payment_in_a_later_remittance(ledger: asyncpg.Connection, tenant: str) -> None:
    paid = Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3330000000001")
    again = Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3330000000002")
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(remit("EFTD0001", "20260701", [paid]))
    await pipeline.run()
    pipeline.feed(remit("EFTD0002", "20260801", [again]))
    await pipeline.run()
    assert await evidence(ledger, tenant) == [("duplicate_payment", "3330000000002", D("160.00"))]


async def test_paid_above_charge(ledger: asyncpg.Connection, tenant: str) -> None:
    generous = Claim("PCN3001", [Service(D("100.00"), [Adj("CO", "45", D("-25.00"))])], icn="4440000000001")
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(remit("EFTP0001", "20260701", [generous]))
    await pipeline.run()
    assert await evidence(ledger, tenant) == [("paid_above_charge", "4440000000001", D("25.00"))]


async def test_a_reversal_is_remembered_until_its_correction_arrives(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    reversal = Claim("PCN4001", [Service(D("-90.00"))], status="22", icn="5550000000001")
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(remit("EFTR0001", "20260701", [reversal, other("Y1")]))
    await pipeline.run()
    pending = await ledger.fetch(
        "SELECT icn, amount FROM detection.reversals WHERE tenant_id = $1 AND corrected_by IS NULL", tenant
    )
    assert [(r["icn"], r["amount"]) for r in pending] == [("5550000000001", D("90.00"))]
    correction = Claim(
        "PCN4001", [Service(D("60.00"))], icn="5550000000002", original_reference="5550000000001"
    )
    pipeline.feed(remit("EFTR0002", "20260720", [correction]))
    await pipeline.run()
    assert (
        await ledger.fetchval(
            "SELECT count(*) FROM detection.reversals WHERE tenant_id = $1 AND corrected_by IS NULL", tenant
        )
        == 0
    )
    assert await evidence(ledger, tenant) == [("reversal_correction", "5550000000001", D("30.00"))]


async def test_duplicate_payment_found_when_the_second_payment_arrives_first(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    paid = Claim("PCN2002", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3331000000001")
    again = Claim("PCN2002", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3331000000002")
    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(remit("EFTD1002", "20260801", [again]))  # the later-dated file is processed first
    await pipeline.run()
    assert await evidence(ledger, tenant) == []
    pipeline.feed(remit("EFTD1001", "20260701", [paid]))
    await pipeline.run()
    assert await evidence(ledger, tenant) == [("duplicate_payment", "3331000000002", D("160.00"))]


@pytest.mark.parametrize("identified_first", [True, False], ids=["identified-first", "demand-first"])
async def test_a_provider_identified_overpayment_must_be_returned_within_60_days(
    ledger: asyncpg.Connection, tenant: str, identified_first: bool
) -> None:
    """The clinic's own audit finds an overpayment (identified 2026-09-01) and staff enter it; the payer's
    demand letter (2026-09-20) for the same FCN and amount comes before or after. Either way the receivable
    carries the identification date through matching, and its timeline (interest's, which `offsetstream
    receivable` prints, and notification's, which reminds staff) has the 60-day report-and-return deadline.
    Demand first, the identification moves no money: a facts-only ``ReceivableUpdated`` carries it."""
    found = letters.LetterEntry(
        kind="provider_identified",
        payer_id="01312",
        payee_id="1234567893",
        fcn="SELF-2026-017",
        amount=D("240.00"),
        letter_date=date(2026, 9, 1),
    )
    demand = found.model_copy(update={"kind": "demand_letter", "letter_date": date(2026, 9, 20)})
    pipeline = InProcessPipeline(ledger, tenant)
    for entry in (found, demand) if identified_first else (demand, found):
        pipeline.send(Outgoing(LETTERS.name, *letters.to_event(entry, tenant, "staff-7")))
        await pipeline.run()
    [row] = await ledger.fetch(
        "SELECT identified_on, determination_date FROM matching.receivables WHERE tenant_id = $1", tenant
    )
    # Day 0 is the demand letter's date (the payer's final determination) in either order: the ledger
    # depends on the inputs, not on their arrival; the identification date travels separately.
    assert (row["identified_on"], row["determination_date"]) == (date(2026, 9, 1), date(2026, 9, 20))
    [row] = await ledger.fetch(
        "SELECT identified_on, principal FROM interest.receivables WHERE tenant_id = $1", tenant
    )
    assert (row["identified_on"], row["principal"]) == (date(2026, 9, 1), D("240.00"))
    timeline = await ledger.fetch("SELECT label, day FROM interest.timelines WHERE tenant_id = $1", tenant)
    assert ("report_and_return_deadline", date(2026, 10, 31)) in [(t["label"], t["day"]) for t in timeline]
    deadlines = await ledger.fetch(
        "SELECT milestone, due_on FROM notification.deadlines WHERE tenant_id = $1", tenant
    )
    assert ("report_and_return_deadline", date(2026, 10, 31)) in [
        (d["milestone"], d["due_on"]) for d in deadlines
    ]
