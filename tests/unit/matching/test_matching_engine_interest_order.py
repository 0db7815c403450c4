"""Matching's engine when the interest stage's postings reach it out of order, in memory.

The interest stage publishes a period's charge from its timer (through its outbox) and the reversal of that
charge from its handler (straight after its commit): a reversal can reach matching before the charge it
reverses. Matching must end where the in-order feed ends, and never try to leave a receivable owing less than
nothing (PostgreSQL refuses that write, and the charge would be dead-lettered and lost for good): a period
whose postings sum below zero counts for nothing until the charge its correction corrects arrives."""

from datetime import date, timedelta
from decimal import Decimal

from matching.ledger_story import LedgerStory

D = Decimal
DETERMINED = date(2026, 7, 3)


def periods(count: int) -> list[tuple[int, str, str]]:
    """The first ``count`` 30-day interest periods after the determination date: (number, start, end)."""
    return [
        (
            n,
            (DETERMINED + timedelta(days=30 * (n - 1) + 1)).isoformat(),
            (DETERMINED + timedelta(days=30 * n)).isoformat(),
        )
        for n in range(1, count + 1)
    ]


async def recovered_before_its_receivable(story: LedgerStory) -> None:
    """A recoupment dated the day before the deferral that opens its receivable, arriving first (parked,
    then re-matched): the receivable is settled, and no interest was ever due on it."""
    await story.pair("WO", "LATE-3", "50.00", "2026-07-02", trace="W33")
    await story.deferral("LATE-3", "50.00", "2026-07-03", trace="W34")
    assert story.receivable("LATE-3").status == "settled"


async def test_reversals_before_the_charges_they_reverse_end_as_in_order() -> None:
    in_order, reversed_first = LedgerStory(), LedgerStory()
    for story in (in_order, reversed_first):
        await recovered_before_its_receivable(story)
    # Step: in order, the interest stage charges five periods (it saw the receivable open before it saw the
    # recoupment), then reverses them (the recoupment predates day 0).
    for n, start, end in periods(5):
        await in_order.interest("LATE-3", n, start, end, "0.48")
    for n, start, end in periods(5):
        await in_order.interest("LATE-3", n, start, end, "-0.48", version=2)
    # Step: the reversals overtake the charges. Counted alone they would make the interest -2.40 and push
    # 2.40 of the recoupment back to the work queue; each waits for the charge it reverses instead …
    settled = reversed_first.receivable("LATE-3")
    for n, start, end in periods(5):
        assert await reversed_first.interest("LATE-3", n, start, end, "-0.48", version=2) == []
    assert reversed_first.receivable("LATE-3") == settled
    assert reversed_first.pairs() == [("WO", "allocated", D("0.00")), ("WO", "deferral", D("0.00"))]
    # … and counts with it: charge and reversal together change nothing.
    for n, start, end in periods(5):
        outputs = await reversed_first.interest("LATE-3", n, start, end, "0.48")
        assert reversed_first.event_types(outputs) == ["InterestAdded"]
        assert reversed_first.receivable("LATE-3").balance.open == D("0.00")
    # Step: a charge redelivered changes nothing.
    n, start, end = periods(1)[0]
    await reversed_first.interest("LATE-3", n, start, end, "0.48")
    for story in (in_order, reversed_first):
        row = story.receivable("LATE-3")
        assert (row.principal_recovered, row.interest_accrued, row.interest_recovered, row.status) == (
            D("50.00"),
            D("0.00"),
            D("0.00"),
            "settled",
        )
        assert story.pairs() == [("WO", "allocated", D("0.00")), ("WO", "deferral", D("0.00"))]
        assert [(a.to_interest, a.to_principal) for a in story.repo.allocations.values()] == [
            (D("0.00"), D("50.00"))
        ]


async def test_a_parked_recoupment_never_takes_more_than_the_receivable_owes() -> None:
    # A receivable whose interest is over-recovered (a correction took back interest a recoupment had paid,
    # with principal still open) owes less than its unrecovered principal: re-matching parked money after a
    # new charge takes only what it owes, never what would leave it below zero.
    story = LedgerStory()
    await story.evidence("FCN1", "100.00", "2026-06-01", channel="letter")
    await story.interest("FCN1", 1, "2026-06-01", "2026-06-30", "1.00")
    await story.pair("WO", "FCN1", "50.00", "2026-07-10")
    # Step: day 0 moves two weeks (a letter): the period is corrected with its new dates, after the
    # recoupment that paid it.
    await story.interest("FCN1", 1, "2026-06-15", "2026-07-14", "-1.00", version=2)
    row = story.receivable("FCN1")
    assert (row.balance.interest_open, row.balance.principal_open, row.balance.open) == (
        D("-1.00"),
        D("51.00"),
        D("50.00"),
    )
    # Step: the rest arrives with a little more than is owed: the excess stays in the work queue.
    await story.pair("WO", "FCN1", "51.00", "2026-07-20")
    row = story.receivable("FCN1")
    assert (row.balance.open, row.status) == (D("0.00"), "settled")
    assert story.pairs()[-1] == ("WO", "allocated", D("1.00"))
