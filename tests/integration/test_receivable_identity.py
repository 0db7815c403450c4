"""One overpayment, one receivable: whatever identifier the payer cites, whatever order evidence arrives in.

The case that broke the ledger on payer files written outside this repo: a reversal (``CLP02=22``) and its
lower correction in one 835, the recovery deferred by a negative ``WO`` whose reference is the *corrected*
claim's ``CLP07`` — not the reversed one's — and recovered 21 days later by a positive ``WO`` citing the same.
It opened two receivables of 100.00 and settled one. Here every reference form a payer uses and every arrival
order must end in one settled receivable; and two receivables opened before the letter that links them was
known are merged into one, leaving the ledger as if they had been one from the start.
"""

import argparse
from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from harness import InProcessPipeline
from harness import other_claim as other
from harness import remit_claims as remit
from x12_builder import Claim, Service

from cli import ledger_check, letters, matching_views, staff
from contracts.topics import LETTERS
from shared.messages import Outgoing
from shared.settings import Settings

pytestmark = pytest.mark.integration
D = Decimal
PAYER = "01312"  # a Medicare contractor (Noridian JE Part B)
ORIGINAL, CORRECTED, PCN = "2226183201000", "2226183201001", "PCN1001"


def reversal_and_correction() -> list[Claim]:
    """250.00 paid earlier is reversed and re-paid at 150.00: 100.00 overpaid."""
    return [
        Claim(PCN, [Service(D("-250.00"))], status="22", icn=ORIGINAL),
        Claim(PCN, [Service(D("150.00"))], icn=CORRECTED, original_reference=ORIGINAL),
        other("X1"),
    ]


REFERENCE_FORMS = {
    "reversed claim's CLP07": ORIGINAL,
    "corrected claim's CLP07": CORRECTED,
    "Medicare padded, corrected ICN + PCN": CORRECTED.ljust(19) + PCN,
    "Medicare unpadded, 19-char FCN + PCN": (CORRECTED + "000000")[:19] + PCN,
}


async def live(ledger: asyncpg.Connection, tenant: str) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    rows = await ledger.fetch(
        """SELECT principal, principal_recovered + interest_recovered AS recovered,
                  principal + interest_accrued - principal_recovered - interest_recovered - written_off AS open,
                  status
           FROM matching.receivables WHERE tenant_id = $1 AND status <> 'merged' ORDER BY reference""",
        tenant,
    )
    return [(r["principal"], r["recovered"], r["open"], r["status"]) for r in rows]


async def unmatched(ledger: asyncpg.Connection, tenant: str) -> Decimal:
    total: Decimal = await ledger.fetchval(
        "SELECT COALESCE(sum(unmatched_amount), 0) FROM matching.adjustments WHERE tenant_id = $1", tenant
    )
    return total


@pytest.mark.parametrize("form", sorted(REFERENCE_FORMS))
@pytest.mark.parametrize("order", ["in order", "recovery first"])
@pytest.mark.parametrize("seed", [None, 7, 1234])
async def test_a_deferred_reversal_is_one_receivable_whatever_the_payer_cites(
    ledger: asyncpg.Connection, tenant: str, form: str, order: str, seed: int | None
) -> None:
    reference = REFERENCE_FORMS[form]
    if form.startswith("Medicare unpadded"):
        # The contractor's 19-position FCN is the corrected ICN with its suffix; the claim says so too.
        claims = reversal_and_correction()
        claims[1] = Claim(PCN, [Service(D("150.00"))], icn=reference[:19], original_reference=ORIGINAL)
    else:
        claims = reversal_and_correction()
    # Step: the reversal, the lower correction and the negative WO deferring the 100.00, in one 835.
    deferral = remit("EFTM0001", "20260803", claims, ("WO", reference, "-100.00"))
    # Step: 21 days later the payer withholds it, citing the same reference.
    recovery = remit("EFTM0002", "20260824", [other("X2")], ("WO", reference, "100.00"))
    files = [deferral, recovery] if order == "in order" else [recovery, deferral]
    pipeline = InProcessPipeline(ledger, tenant, seed=seed)
    for number, content in enumerate(files):
        pipeline.feed(content, f"file{number}.835")
    await pipeline.run()
    # One receivable of 100.00, settled by the recovery; nothing left to identify.
    assert await live(ledger, tenant) == [(D("100.00"), D("100.00"), D("0.00"), "settled")]
    assert await unmatched(ledger, tenant) == D("0.00")
    assert await ledger_check.check(ledger, tenant) == []


async def ledger_of(ledger: asyncpg.Connection, tenant: str) -> list[tuple[object, ...]]:
    """Every live receivable's money, interest included, and the work queue."""
    rows = await ledger.fetch(
        """SELECT principal, determination_date, interest_accrued, interest_recovered, principal_recovered,
                  status
           FROM matching.receivables WHERE tenant_id = $1 AND status <> 'merged' ORDER BY reference""",
        tenant,
    )
    return [tuple(r.values()) for r in rows] + [("unmatched", await unmatched(ledger, tenant))]


@pytest.mark.parametrize(
    ("paid_on", "amount", "settled"),
    [("20260824", "100.00", True), ("20261001", "40.00", False)],
    ids=["settled before interest", "partly recovered after interest came due"],
)
async def test_two_receivables_opened_before_the_letter_linked_them_are_merged(
    ledger: asyncpg.Connection,
    tenant: str,
    paid_on: str,
    amount: str,
    settled: bool,
    stack_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The contractor deferred the reversal's 100.00 under its own FCN (not a claim number), so detection saw
    two debts: the reversal's (keyed by the ICN, netted in the claim amounts) and the deferral's (keyed by the
    FCN). The demand letter names both the FCN and the claim: from then on they are one receivable, with the
    netting undone (the deferral in the same remittance named the FCN) and the later recoupment applied."""
    fcn = "FCN26080300017"
    deferral = remit("EFTM0101", "20260803", reversal_and_correction(), ("WO", fcn, "-100.00"))
    recovery = remit("EFTM0102", paid_on, [other("X3")], ("WO", fcn, amount))
    entry = letters.LetterEntry(
        payer_id=PAYER,
        payee_id="1234567893",
        fcn=fcn,
        amount=D("100.00"),
        letter_date=date(2026, 8, 10),
        claims=(ORIGINAL,),
    )
    key, value = letters.to_event(entry, tenant, "staff-7")

    # Step: both 835s first: two receivables, as far as anyone can know yet (interest may come due on one).
    late = InProcessPipeline(ledger, tenant)
    for content in (deferral, recovery):
        late.feed(content)
        await late.run()
    assert len(await live(ledger, tenant)) == 2
    # Step: the letter links them.
    late.send(Outgoing(LETTERS.name, key, value))
    await late.run()
    merged = await live(ledger, tenant)
    if settled:
        assert merged == [(D("100.00"), D("100.00"), D("0.00"), "settled")]
    else:
        assert [(p, s) for p, _, _, s in merged] == [(D("100.00"), "partially_recovered")]
    assert await unmatched(ledger, tenant) == D("0.00")
    assert await ledger_check.check(ledger, tenant) == []

    # The same inputs with the letter first: the ledger the merge must equal.
    first = f"{tenant}-letter-first"
    early = InProcessPipeline(ledger, first)
    early.send(Outgoing(LETTERS.name, *letters.to_event(entry, first, "staff-7")))
    await early.run()
    for content in (deferral, recovery):
        early.feed(content)
        await early.run()
    assert await ledger_of(ledger, first) == await ledger_of(ledger, tenant)

    # `offsetstream receivable` shows the merge from either side, and finds the debt by any identifier.
    for name in (fcn, ORIGINAL, CORRECTED):
        detail = await matching_views.receivable(ledger, tenant, name)
        assert detail is not None, name
        head = detail["receivable"]
        survivor = head["merged_into_reference"] or head["reference"]
        assert survivor in (fcn, ORIGINAL)
    absorbed = await ledger.fetchrow(
        "SELECT * FROM matching.receivables WHERE tenant_id = $1 AND status = 'merged'", tenant
    )
    assert absorbed is not None
    assert (absorbed["principal"], absorbed["interest_accrued"]) == (D("0.00"), D("0.00"))
    posted = await ledger.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM matching.interest_charges WHERE tenant_id = $1 AND receivable_id = $2",
        tenant,
        absorbed["receivable_id"],
    )
    assert posted == D("0.00")  # whatever interest it was charged was reversed
    survivor_detail = await matching_views.receivable(ledger, tenant, absorbed["reference"])
    assert survivor_detail is not None
    assert survivor_detail["receivable"]["merged_into_reference"] is not None
    assert any(h["change"] == "ReceivableMerged" for h in survivor_detail["history"])

    # `offsetstream receivable REF` says so, from either side.
    monkeypatch.setattr(staff, "get_settings", lambda: stack_settings)
    survivor_reference = survivor_detail["receivable"]["merged_into_reference"]
    for name, says in ((absorbed["reference"], "Merged into"), (survivor_reference, "Absorbed")):
        capsys.readouterr()
        assert await staff._receivable(argparse.Namespace(tenant=tenant, reference=name, json=False)) == 0
        assert says in capsys.readouterr().out


@pytest.mark.parametrize("legs", ["72 then WO", "WO then 72"])
async def test_a_refund_pair_without_a_known_receivable_is_acknowledged_not_queued(
    ledger: asyncpg.Connection, tenant: str, legs: str
) -> None:
    """A ``72`` (authorized return, −25.00) and its ``WO`` (+25.00) on one reference net to zero: the payer
    acknowledges the provider's refund check. With no receivable known for the reference it is a refund
    acknowledged for an unknown receivable — never 25.00 "to identify" — and when the demand letter arrives
    later the refund is applied to it, exactly as if the letter had come first."""
    fcn = "FCN26091400021"
    pairs = [("72", fcn, "-25.00"), ("WO", fcn, "25.00")]
    if legs == "WO then 72":
        pairs.reverse()
    refund = remit("EFTR0001", "20260914", [other("R1")], *pairs)
    entry = letters.LetterEntry(
        payer_id=PAYER, payee_id="1234567893", fcn=fcn, amount=D("25.00"), letter_date=date(2026, 8, 20)
    )

    pipeline = InProcessPipeline(ledger, tenant)
    pipeline.feed(refund)
    await pipeline.run()
    assert await matching_views.unmatched(ledger, tenant) == []
    assert await unmatched(ledger, tenant) == D("0.00")
    story = await matching_views.remittance(ledger, tenant, "EFTR0001")
    assert story is not None
    assert {p["bucket"] for p in story["pairs"]} == {"refund_acknowledged"}
    assert any("unknown receivable" in p["reason"] for p in story["pairs"])
    assert await ledger_check.check(ledger, tenant) == []

    # Step: the letter arrives: its receivable is refunded by the check the payer acknowledged.
    pipeline.send(Outgoing(LETTERS.name, *letters.to_event(entry, tenant, "staff-7")))
    await pipeline.run()
    assert await live(ledger, tenant) == [(D("25.00"), D("25.00"), D("0.00"), "refunded")]
    assert await ledger_check.check(ledger, tenant) == []

    first = f"{tenant}-letter-first"
    early = InProcessPipeline(ledger, first)
    early.send(Outgoing(LETTERS.name, *letters.to_event(entry, first, "staff-7")))
    await early.run()
    early.feed(refund)
    await early.run()
    assert await ledger_of(ledger, first) == await ledger_of(ledger, tenant)


async def test_a_netting_seen_late_comes_before_a_later_dated_recoupment(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Found by the differential oracle: the reversal's 835 of 3 August nets the 100.00 in its claim amounts;
    a 10.00 WO of 10 August on the same claim exceeds what is then owed and belongs in the work queue. When
    the letter and the August 10 WO reach matching before the reversal's 835, the WO took 10.00 of the balance
    first and the netting only 90.00: by business date the netting comes first, whatever the arrival order."""
    netted = remit("EFTN0001", "20260803", reversal_and_correction())
    later = remit("EFTN0002", "20260810", [other("N2")], ("WO", ORIGINAL, "10.00"))
    entry = letters.LetterEntry(
        payer_id=PAYER,
        payee_id="1234567893",
        fcn="FCN26080300099",
        amount=D("100.00"),
        letter_date=date(2026, 8, 3),
        claims=(ORIGINAL,),
    )
    results = []
    for name, order in (("in-order", ["netted", "letter", "later"]), ("late", ["letter", "later", "netted"])):
        who = f"{tenant}-{name}"
        pipeline = InProcessPipeline(ledger, who)
        for step in order:
            if step == "letter":
                pipeline.send(Outgoing(LETTERS.name, *letters.to_event(entry, who, "staff-7")))
            else:
                pipeline.feed(netted if step == "netted" else later)
            await pipeline.run()
        assert await ledger_check.check(ledger, who) == []
        results.append(await ledger_of(ledger, who))
    assert results[0] == results[1]
    assert results[0][-1] == ("unmatched", D("10.00"))
