"""Matching's engine on refunds, in memory: a 72 + WO pair in one remittance is the provider's check
acknowledged, not cash withheld — in either order, before or after its receivable, and whether or not staff
recorded the check first; a check above the balance known on its date pays interest charged later."""

from decimal import Decimal

import pytest
from matching.ledger_story import LedgerStory

D = Decimal


@pytest.mark.parametrize("order", ["wo_first", "72_first"])
async def test_a_refund_pair_closes_the_receivable_without_cash(order: str) -> None:
    story = LedgerStory()
    await story.deferral("FCN500", "250.00", "2026-08-03", trace="EFT500001")
    wo, ack = ("WO", "FCN500", "250.00"), ("72", "FCN500", "-250.00")
    for code, reference, amount in (wo, ack) if order == "wo_first" else (ack, wo):
        await story.pair(code, reference, amount, "2026-09-01", trace="EFT500002")
    row = story.receivable("FCN500")
    assert (row.refunded, row.principal_recovered, row.status) == (D("250.00"), D("250.00"), "refunded")
    assert {(code, bucket) for code, bucket, _ in story.pairs()[1:]} == {
        ("WO", "refund_acknowledged"),
        ("72", "refund_acknowledged"),
    }
    assert story.allocation_kinds() == ["refund"]
    assert story.history("FCN500")[-1] in ("ReceivableRefunded", "ReceivableReduced")


@pytest.mark.parametrize("order", ["wo_first", "72_first"])
async def test_a_refund_pair_before_its_receivable_waits_out_of_the_work_queue(order: str) -> None:
    story = LedgerStory()
    wo, ack = ("WO", "FCN510", "250.00"), ("72", "FCN510", "-250.00")
    for code, reference, amount in (wo, ack) if order == "wo_first" else (ack, wo):
        await story.pair(code, reference, amount, "2026-09-01", trace="EFT510002")
    waiting = next(p for p in story.stored_pairs() if p.reason_code == "WO")
    assert (waiting.bucket, waiting.unmatched_amount, waiting.awaiting_refund) == (
        "refund_acknowledged",
        D("0.00"),
        D("250.00"),
    )
    assert "refund acknowledged for an unknown receivable" in waiting.reason
    # Step: the receivable appears: the waiting refund is applied to it as a refund.
    outputs = await story.evidence("FCN510", "250.00", "2026-08-03", channel="letter")
    row = story.receivable("FCN510")
    assert (row.refunded, row.status) == (D("250.00"), "refunded")
    applied = next(p for p in story.stored_pairs() if p.reason_code == "WO")
    assert applied.awaiting_refund == D("0.00")
    assert "RefundAcknowledged" in story.event_types(outputs)


@pytest.mark.parametrize("order", ["wo_first", "72_first"])
async def test_the_payer_acknowledging_a_refund_staff_recorded_counts_it_once(order: str) -> None:
    story = LedgerStory()
    await story.deferral("FCN520", "250.00", "2026-08-03", trace="EFT520001")
    # Step: staff record the provider's check for the whole balance.
    await story.staff("refund_sent", "FCN520", "2026-08-20")
    assert story.receivable("FCN520").status == "refunded"
    # Step: the payer's remittance acknowledges it with a 72 + WO pair.
    wo, ack = ("WO", "FCN520", "250.00"), ("72", "FCN520", "-250.00")
    for code, reference, amount in (wo, ack) if order == "wo_first" else (ack, wo):
        await story.pair(code, reference, amount, "2026-09-01", trace="EFT520002")
    row = story.receivable("FCN520")
    assert (row.refunded, row.principal_recovered, row.status) == (D("250.00"), D("250.00"), "refunded")
    assert story.pairs()[1:] == [
        (code, "refund_acknowledged", D("0.00"))
        for code in (["WO", "72"] if order == "wo_first" else ["72", "WO"])
    ]
    assert "RefundAcknowledged" in story.history("FCN520")


async def test_a_refund_check_above_the_balance_pays_interest_charged_later() -> None:
    story = LedgerStory()
    await story.evidence("FCN530", "100.00", "2026-06-01", channel="letter")
    # Step: the provider's check of 101.00 covers principal and the interest it knows is due.
    await story.staff("refund_sent", "FCN530", "2026-07-10", amount="101.00")
    assert [c.amount for c in story.repo.credits.values()] == [D("1.00")]
    # Step: that interest is charged after the check: the check's credit pays it.
    await story.interest("FCN530", 1, "2026-06-01", "2026-06-30", "1.00")
    row = story.receivable("FCN530")
    assert (row.interest_recovered, row.principal_recovered, row.refunded, row.status) == (
        D("1.00"),
        D("100.00"),
        D("101.00"),
        "refunded",
    )
    assert [c.amount for c in story.repo.credits.values()] == [D("0.00")]


async def test_a_72_after_its_wo_turns_the_recoupment_into_a_refund() -> None:
    story = LedgerStory()
    await story.deferral("FCN540", "90.00", "2026-08-03", trace="EFT540001")
    await story.pair("WO", "FCN540", "90.00", "2026-09-01", trace="EFT540002")
    assert story.allocation_kinds() == ["offset"]
    outputs = await story.pair("72", "FCN540", "-90.00", "2026-09-01", trace="EFT540002")
    assert story.allocation_kinds() == ["refund"]
    assert story.receivable("FCN540").status == "refunded"
    assert story.event_types(outputs) == ["RefundAcknowledged", "ReceivableRefunded"]
