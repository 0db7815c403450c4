"""Matching's engine on recoupments (WO), in memory: the stories ``tests/integration/test_matching_scenarios.py``
tells through the whole pipeline and PostgreSQL, told here to the engine alone, event by event."""

from decimal import Decimal
from typing import Any

from matching.ledger_story import LedgerStory

from contracts.envelope import Envelope

D = Decimal


async def test_deferred_recovery_then_recovery_and_the_same_events_again() -> None:
    story = LedgerStory()
    # Step: the payer defers recovering 300.00 (negative WO); detection opens the receivable.
    await story.deferral("FCN100", "300.00", "2026-08-03", trace="EFT100001")
    # Step: three weeks later it recovers the 300.00.
    await story.pair("WO", "FCN100", "300.00", "2026-08-24", trace="EFT100002")
    row = story.receivable("FCN100")
    assert (row.principal, row.principal_recovered, row.status) == (D("300.00"), D("300.00"), "settled")
    assert story.pairs() == [("WO", "deferral", D("0.00")), ("WO", "allocated", D("0.00"))]
    # Step: the same events are delivered again (the same files fed twice): the ledger does not move and
    # the same events are published again.
    published = list(story.published)
    replayed: list[Envelope[Any]] = [
        story.pair_event("WO", "FCN100", "-300.00", "2026-08-03", trace="EFT100001", ordinal=1),
        story.evidence_event("FCN100", "300.00", "2026-08-03", source="deferral FCN100"),
        story.pair_event("WO", "FCN100", "300.00", "2026-08-24", trace="EFT100002", ordinal=2),
    ]
    for env in replayed:
        await story.deliver(env)
    assert story.receivable("FCN100") == row
    assert len(story.repo.allocations) == 1
    assert story.published == published * 2


async def test_a_recovery_before_its_receivable_is_parked_then_rematched() -> None:
    story = LedgerStory()
    # Step: the recoupment arrives first: nothing to apply it to, so it waits in the work queue.
    first = await story.pair("WO", "FCN300", "80.00", "2026-08-24")
    assert story.event_types(first) == ["OffsetUnmatched"]
    assert story.pairs() == [("WO", "unmatched", D("80.00"))]
    # Step: the deferral that opens the receivable arrives: the parked recoupment is re-matched to it.
    outputs = await story.deferral("FCN300", "80.00", "2026-08-03")
    row = story.receivable("FCN300")
    assert (row.principal_recovered, row.status) == (D("80.00"), "settled")
    assert ("WO", "allocated", D("0.00")) in story.pairs()
    rematch = story.payloads("OffsetApplied", outputs)
    assert len(rematch) == 1 and rematch[0]["rematch_of"] is not None
    assert story.stored_pairs()[-1].match_method == "rematch"


async def test_partial_recoveries_and_two_deferrals_under_one_reference() -> None:
    story = LedgerStory()
    await story.pair("WO", "FCN700", "-100.00", "2026-06-01")
    await story.evidence("FCN700", "100.00", "2026-06-01")
    # Step: a second deferral of the same claim: detection merges it (principal 150.00).
    await story.pair("WO", "FCN700", "-50.00", "2026-06-05")
    await story.evidence("FCN700", "150.00", "2026-06-01", evidence="50.00", source="second deferral")
    await story.pair("WO", "FCN700", "40.00", "2026-06-10")
    await story.pair("WO", "FCN700", "70.00", "2026-06-15")
    row = story.receivable("FCN700")
    assert (row.principal, row.principal_recovered, row.status) == (
        D("150.00"),
        D("110.00"),
        "partially_recovered",
    )
    assert story.history("FCN700") == [
        "ReceivableOpened",
        "ReceivableIncreased",
        "ReceivableReduced",
        "ReceivableReduced",
    ]


async def test_a_recovery_above_the_open_balance_leaves_the_excess_unmatched() -> None:
    story = LedgerStory()
    await story.deferral("FCN800", "100.00", "2026-06-01")
    outputs = await story.pair("WO", "FCN800", "130.00", "2026-06-15")
    assert story.pairs()[-1] == ("WO", "allocated", D("30.00"))
    [offset] = story.payloads("OffsetApplied", outputs)
    assert offset["unmatched_amount"] == "30.00"
    assert "30.00 exceeds the open balance" in offset["reason"]
    assert story.event_types(outputs) == ["OffsetApplied", "ReceivableSettled"]


async def test_a_lump_wo_without_reference_settles_receivables_oldest_first() -> None:
    story = LedgerStory()
    await story.deferral("FCN601", "100.00", "2026-06-01")
    await story.deferral("FCN602", "150.00", "2026-07-01")
    await story.deferral("FCN603", "60.00", "2026-07-01")
    await story.pair("WO", None, "200.00", "2026-07-10")
    # Step: FCN601's first period of interest, due before the lump's date, is charged after it: 0.96 of the
    # lump paid it, so 0.96 of principal stays open.
    await story.interest("FCN601", 1, "2026-06-01", "2026-06-30", "0.96")
    first, second, third = (story.receivable(r) for r in ("FCN601", "FCN602", "FCN603"))
    assert (first.interest_recovered, first.principal_recovered) == (D("0.96"), D("99.04"))
    assert (second.principal_recovered, second.status) == (D("100.00"), "partially_recovered")
    assert third.principal_recovered == D("0.00")
    assert len(story.repo.allocations) == 2
    assert story.stored_pairs()[-1].match_method == "oldest_first"


async def test_review_codes_go_to_the_work_queue_and_others_are_classified() -> None:
    story = LedgerStory()
    for code, reference, amount in [
        ("WU", None, "10.00"),
        ("OB", "1234", "20.00"),
        ("TL", "X1", "30.00"),
        ("L6", None, "-2.37"),
        ("CS", "ADJ", "5.00"),
        ("IR", None, "7.00"),
    ]:
        await story.pair(code, reference, amount, "2026-06-01")
    assert story.pairs() == [
        ("WU", "unmatched", D("10.00")),
        ("OB", "unmatched", D("20.00")),
        ("TL", "unmatched", D("30.00")),
        ("L6", "non_offset", D("0.00")),
        ("CS", "non_offset", D("0.00")),
        ("IR", "non_offset", D("0.00")),
    ]
    assert set(story.event_types()) == {"OffsetUnmatched", "NonOffsetRecorded"}


async def test_an_unreferenced_lookalike_is_suggested_not_applied() -> None:
    story = LedgerStory()
    await story.deferral("FCN-C-1", "90.00", "2026-06-01")
    await story.deferral("FCN-C-2", "90.00", "2026-06-02")
    await story.pair("WO", "UNKNOWN-REF", "90.00", "2026-07-01")
    last = story.stored_pairs()[-1]
    assert (last.bucket, last.unmatched_amount) == ("unmatched", D("90.00"))
    assert last.suggestion is not None and "score" in last.suggestion


async def test_a_reference_resolves_by_the_payer_claim_number() -> None:
    story = LedgerStory()
    # Step: a reversal's claim number opens the receivable (detection keys it by the ICN too).
    await story.evidence("2226183201000", "100.00", "2026-06-02", channel="claim", claims=("2226183201000",))
    # Step: a 15-digit FCN whose last 13 digits are that ICN.
    await story.pair("WO", "102226183201000", "100.00", "2026-06-12")
    assert story.receivable("2226183201000").status == "settled"
    assert story.stored_pairs()[-1].match_method == "icn"


async def test_interest_due_before_a_recoupment_takes_its_money_first_whatever_the_arrival_order() -> None:
    in_order, late_interest = LedgerStory(), LedgerStory()
    for story in (in_order, late_interest):
        await story.evidence("FCN200", "120.00", "2026-07-01", channel="letter")
    # Step: one period of interest (due on day 31) is charged before the recoupment of day 45 …
    await in_order.interest("FCN200", 1, "2026-07-01", "2026-07-30", "1.15")
    await in_order.pair("WO", "FCN200", "120.00", "2026-08-15")
    # … or the tick runs behind and charges it after the recoupment was applied.
    await late_interest.pair("WO", "FCN200", "120.00", "2026-08-15")
    assert late_interest.receivable("FCN200").status == "settled"
    await late_interest.interest("FCN200", 1, "2026-07-01", "2026-07-30", "1.15")
    for story in (in_order, late_interest):
        row = story.receivable("FCN200")
        assert (row.interest_accrued, row.interest_recovered) == (D("1.15"), D("1.15"))
        assert (row.principal_recovered, row.status) == (D("118.85"), "partially_recovered")


async def test_interest_charged_later_rematches_the_excess_a_recoupment_left_unmatched() -> None:
    story = LedgerStory()
    await story.evidence("FCN210", "100.00", "2026-06-01", channel="letter")
    # Step: the payer takes 101.00: principal plus the interest it knows is due; matching does not know yet.
    await story.pair("WO", "FCN210", "101.00", "2026-07-15")
    assert story.pairs() == [("WO", "allocated", D("1.00"))]
    # Step: the interest due on day 31 is charged: the parked 1.00 pays it.
    outputs = await story.interest("FCN210", 1, "2026-06-01", "2026-06-30", "1.00")
    row = story.receivable("FCN210")
    assert (row.interest_recovered, row.principal_recovered, row.status) == (
        D("1.00"),
        D("100.00"),
        "settled",
    )
    assert story.pairs() == [("WO", "allocated", D("0.00"))]
    assert "OffsetApplied" in story.event_types(outputs)


async def test_a_late_file_with_an_earlier_recoupment_displaces_the_later_one() -> None:
    story = LedgerStory()
    await story.deferral("FCN900", "100.00", "2026-06-01", trace="EFT900001")
    # Step: the 06-20 file arrives first and settles the receivable.
    await story.pair("WO", "FCN900", "100.00", "2026-06-20", trace="EFT900003")
    # Step: the 06-10 file arrives late: by business date its 60.00 came first, so 60.00 of the later
    # recoupment gives way and goes back to the work queue, re-explained.
    outputs = await story.pair("WO", "FCN900", "60.00", "2026-06-10", trace="EFT900002")
    assert story.pairs() == [
        ("WO", "deferral", D("0.00")),
        ("WO", "allocated", D("0.00")),
        ("WO", "allocated", D("60.00")),
    ]
    [displaced] = story.payloads("OffsetUnmatched", outputs)
    assert (displaced["unmatched_amount"], displaced["payment_date"]) == ("60.00", "2026-06-20")
    assert "exceeds the open balance of FCN900" in displaced["reason"]
    row = story.receivable("FCN900")
    assert (row.principal_recovered, row.status) == (D("100.00"), "settled")


async def test_an_interest_correction_gives_back_what_recoveries_paid_of_it() -> None:
    story = LedgerStory()
    await story.evidence("FCN910", "100.00", "2026-06-01", channel="letter")
    await story.interest("FCN910", 1, "2026-06-01", "2026-06-30", "1.00")
    await story.pair("WO", "FCN910", "101.00", "2026-07-10")
    assert story.receivable("FCN910").status == "settled"
    # Step: the interest stage corrects period 1 down by 0.50: the recoupment paid 0.50 too much.
    outputs = await story.interest("FCN910", 1, "2026-06-01", "2026-06-30", "-0.50", version=2)
    assert story.pairs() == [("WO", "allocated", D("0.50"))]
    row = story.receivable("FCN910")
    assert (row.interest_accrued, row.interest_recovered, row.principal_recovered) == (
        D("0.50"),
        D("0.50"),
        D("100.00"),
    )
    assert story.event_types(outputs) == ["OffsetUnmatched", "InterestAdded"]
    # Step: the same correction delivered again changes nothing.
    assert await story.interest("FCN910", 1, "2026-06-01", "2026-06-30", "-0.50", version=2) == outputs
    assert story.receivable("FCN910") == row
