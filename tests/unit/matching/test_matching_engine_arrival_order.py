"""Matching's engine, in memory, on the oracle differential's findings 3, 9 and 10 (session 9): the ledger is a
function of what arrived, never of the order it arrived in (DESIGN.md invariant 6). Each story is told in
every arrival order, or in the one that went wrong, and must end as it would in business-date order."""

from decimal import Decimal
from itertools import permutations
from typing import Any
from uuid import UUID

import pytest
from matching.ledger_story import LedgerStory

from shared.ids import stable_id

D = Decimal


def allocated(story: LedgerStory) -> dict[tuple[str, str], Decimal]:
    """(trace, kind) → money applied, over every receivable."""
    pairs = {p.adjustment_id: p.trace_number for p in story.stored_pairs()}
    found: dict[tuple[str, str], Decimal] = {}
    for a in story.repo.allocations.values():
        if a.total:
            where = (pairs.get(a.adjustment_id, "netting"), a.kind)
            found[where] = found.get(where, D("0.00")) + a.total
    return found


def by_trace(story: LedgerStory) -> dict[str, tuple[str, Decimal, Decimal]]:
    """trace → (bucket, unmatched, awaiting refund) of its WO."""
    return {
        p.trace_number: (p.bucket, p.unmatched_amount, p.awaiting_refund)
        for p in story.stored_pairs()
        if p.reason_code == "WO" and p.amount > 0
    }


# --- finding 3: who takes the excess when a debt is recovered more than it owes ------------------------------


@pytest.mark.parametrize("order", ["in_order", "refund_first"])
async def test_a_refund_pair_seen_first_gives_way_to_an_earlier_recoupment(order: str) -> None:
    story = LedgerStory()
    await story.deferral("FCN31", "100.00", "2026-06-01", trace="D1")

    async def refund() -> None:
        await story.pair("WO", "FCN31", "100.00", "2026-07-20", trace="R2", ordinal=1, pair_index=1)
        await story.pair("72", "FCN31", "-100.00", "2026-07-20", trace="R2", ordinal=1, pair_index=2)

    async def recoupment() -> None:
        await story.pair("WO", "FCN31", "60.00", "2026-07-01", trace="W1", ordinal=1)

    steps = [recoupment, refund] if order == "in_order" else [refund, recoupment]
    for step in steps:
        await step()
    # By business date the 07-01 recoupment came first: it is applied in full; the refund acknowledged on
    # 07-20 pays the 40.00 left, and its other 60.00 waits as a refund, never in the work queue.
    assert allocated(story) == {("W1", "offset"): D("60.00"), ("R2", "refund"): D("40.00")}
    assert by_trace(story) == {
        "W1": ("allocated", D("0.00"), D("0.00")),
        "R2": ("refund_acknowledged", D("0.00"), D("60.00")),
    }
    row = story.receivable("FCN31")
    assert (row.principal_recovered, row.refunded, row.status) == (D("100.00"), D("40.00"), "settled")


async def test_a_netting_displaces_a_refund_pair_applied_before_it() -> None:
    story = LedgerStory()
    netted = stable_id("remittance", "netting 835")
    # Step: the letter opens the receivable; the provider's refund check (acknowledged 07-10) pays it …
    await story.evidence("FCN32", "100.00", "2026-06-01", channel="letter")
    await story.pair("WO", "FCN32", "100.00", "2026-07-10", trace="R1", ordinal=1, pair_index=1)
    await story.pair("72", "FCN32", "-100.00", "2026-07-10", trace="R1", ordinal=1, pair_index=2)
    # … then the 06-01 remittance whose reversal and correction netted the 100.00 arrives: by business date
    # the netting recovered it first, so the refund gives way (it waits, acknowledged, never queued).
    await story.evidence("FCN32", "100.00", "2026-06-01", channel="claim", netted_in=netted, source="netting")
    assert allocated(story) == {("netting", "netting"): D("100.00")}
    assert by_trace(story) == {"R1": ("refund_acknowledged", D("0.00"), D("100.00"))}
    assert story.receivable("FCN32").status == "settled"


async def test_a_parked_recoupment_rematched_late_displaces_a_later_one() -> None:
    story = LedgerStory()
    await story.deferral("2233000000000", "100.00", "2026-06-01", trace="D1")
    # Step: the 07-20 recoupment settles the receivable; the 07-01 one cites the letter's FCN, not known yet.
    await story.pair("WO", "2233000000000", "100.00", "2026-07-20", trace="W2")
    await story.pair("WO", "FCN33", "60.00", "2026-07-01", trace="W1")
    assert by_trace(story)["W1"] == ("unmatched", D("60.00"), D("0.00"))
    # Step: the letter links its FCN to the claim: the 07-01 money came first, so 60.00 of the 07-20 gives way.
    await story.evidence("2233000000000", "100.00", "2026-06-01", channel="letter", claims=("FCN33",))
    assert allocated(story) == {("W1", "offset"): D("60.00"), ("W2", "offset"): D("40.00")}
    assert by_trace(story) == {
        "W1": ("allocated", D("0.00"), D("0.00")),
        "W2": ("allocated", D("60.00"), D("0.00")),
    }


# --- finding 9: a scored guess is overruled by the receivable its reference names ----------------------------


async def test_a_recoupment_guessed_for_a_lookalike_moves_to_its_own_receivable_when_that_opens() -> None:
    story = LedgerStory()
    await story.evidence("FCN00260105000", "100.00", "2026-01-05", channel="letter")
    # Step: a WO cites FCN01260105000, whose letter has not come: the scored search takes the look-alike
    # (same amount, same last 9 characters) for it.
    await story.pair("WO", "FCN01260105000", "100.00", "2026-02-01", trace="W1")
    assert (story.stored_pairs()[-1].match_method or "").startswith("scored:")
    # Step: the look-alike's own recoupment finds it settled and waits in the work queue.
    await story.pair("WO", "FCN00260105000", "100.00", "2026-03-01", trace="W2")
    assert by_trace(story)["W2"] == ("unmatched", D("100.00"), D("0.00"))
    # Step: the letter of FCN01260105000 arrives: the guess is taken back and applied to its own receivable,
    # and the look-alike's own recoupment now settles it.
    outputs = await story.evidence("FCN01260105000", "100.00", "2026-01-05", channel="letter")
    assert story.receivable("FCN01260105000").status == "settled"
    assert story.receivable("FCN00260105000").status == "settled"
    assert by_trace(story) == {
        "W1": ("allocated", D("0.00"), D("0.00")),
        "W2": ("allocated", D("0.00"), D("0.00")),
    }
    rids = {a.adjustment_id: a.receivable_id for a in story.repo.allocations.values() if a.total}
    pair_rid: dict[str, UUID] = {p.trace_number: rids[p.adjustment_id] for p in story.stored_pairs()}
    assert pair_rid == {"W1": story.rid("FCN01260105000"), "W2": story.rid("FCN00260105000")}
    assert "ReceivableIncreased" in story.event_types(outputs)


# --- finding 10: unnamed forwarding balances ----------------------------------------------------------------

FB_STEPS: list[tuple[str | None, str, str, str]] = [
    ("T12", "-122.43", "2026-01-12", "T12"),
    (None, "122.43", "2026-01-14", "T14"),
    ("T16", "-0.51", "2026-01-16", "T16"),
    (None, "0.51", "2026-01-18", "T18"),
]


@pytest.mark.parametrize("order", list(permutations(range(len(FB_STEPS)))))
async def test_unnamed_fbs_apply_the_balances_they_were_carried_for_in_any_arrival_order(
    order: tuple[int, ...],
) -> None:
    """Payer 60054 in CI: the 0.51 FB arriving before the 122.43 one took the older balance, and the 122.43
    was left on a balance of its own."""
    story = LedgerStory()
    for i in order:
        reference, amount, paid, trace = FB_STEPS[i]
        kw: dict[str, Any] = {"trace": trace}
        await story.pair("FB", reference, amount, paid, **kw)
    found = {b.reference: (b.opened_amount, b.applied_amount) for b in story.repo.forwardings.values()}
    assert found == {"T12": (D("122.43"), D("122.43")), "T16": (D("0.51"), D("0.51"))}
