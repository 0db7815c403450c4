"""Matching's work-queue steps (``remit.work-items.v1``), in memory: link an item to a receivable, dismiss it as
not ours, assign it, note on it; each applied once, refused steps recorded with the reason."""

import logging
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from matching.ledger_story import PAYER, LedgerStory
from matching.work_item_story import act

from contracts.events import OverpaymentDetected
from services.matching.work_items import DISMISSED_BUCKET
from shared import envelopes
from shared.ids import account_key, stable_id

D = Decimal
NOTE = "patient Jane Roe DOB 1950-01-01 called about this"  # PHI-like text that must never be logged


async def parked_item(story: LedgerStory, amount: str = "80.00", reference: str = "UNKNOWN77") -> UUID:
    """A WO whose reference names nothing: it waits in the work queue; its id is the item id."""
    env = story.pair_event("WO", reference, amount, "2026-08-24", trace="EFT900")
    await story.deliver(env)
    pair = story.repo.pairs[story.tenant, env.event_id]
    assert (pair.bucket, pair.unmatched_amount) == ("unmatched", D(amount))
    return env.event_id


def outcomes(story: LedgerStory, item: UUID) -> list[tuple[str, str, str]]:
    return [
        (a.kind, a.outcome, a.detail)
        for (t, _), a in story.repo.work_item_actions.items()
        if t == story.tenant and a.adjustment_id == item
    ]


def allocated_to(story: LedgerStory, item: UUID) -> Decimal:
    return sum((a.total for a in story.repo.allocations.values() if a.adjustment_id == item), D(0))


async def test_link_applies_the_waiting_money_as_a_match_would_and_once() -> None:
    story = LedgerStory()
    item = await parked_item(story)
    await story.deferral(
        "FCN300", "100.00", "2026-08-03"
    )  # opens FCN300 (100.00); the item names another ref
    assert story.repo.pairs[story.tenant, item].unmatched_amount == D("80.00")

    outputs = await act(story, "link", item, reference="FCN300")

    row = story.receivable("FCN300")
    assert (row.principal_recovered, row.status) == (D("80.00"), "partially_recovered")
    pair = story.repo.pairs[story.tenant, item]
    assert (pair.bucket, pair.unmatched_amount) == ("allocated", D("0.00"))
    assert allocated_to(story, item) == D("80.00")  # the allocation's source is the item's PLB pair
    assert story.event_types(outputs) == ["ReceivableReduced", "OffsetApplied"]
    offset = story.payloads("OffsetApplied", outputs)[0]
    assert offset["rematch_of"] == str(item) and "linked by staff to FCN300" in offset["reason"]
    assert outcomes(story, item) == [("link", "applied", "80.00 applied to FCN300")]

    # Redelivered: nothing moves. The same step entered again (another request): refused, nothing waits.
    before = (story.receivable("FCN300"), dict(story.repo.allocations))
    assert await act(story, "link", item, reference="FCN300") == outputs
    assert await act(story, "link", item, reference="FCN300", request="r2") == []
    assert (story.receivable("FCN300"), dict(story.repo.allocations)) == before
    assert outcomes(story, item)[-1] == (
        "link",
        "rejected",
        "nothing of this item waits in the work queue any more",
    )


async def test_link_above_the_balance_leaves_the_excess_in_the_queue() -> None:
    story = LedgerStory()
    item = await parked_item(story, "80.00")
    await story.deferral("FCN310", "50.00", "2026-08-03")
    await act(story, "link", item, reference="FCN310")
    assert story.receivable("FCN310").status == "settled"
    pair = story.repo.pairs[story.tenant, item]
    assert (pair.bucket, pair.unmatched_amount) == ("allocated", D("30.00"))
    assert allocated_to(story, item) + pair.unmatched_amount == pair.amount


async def test_link_is_refused_and_recorded_for_unknown_settled_or_foreign_receivables() -> None:
    story = LedgerStory()
    item = await parked_item(story)
    # Unknown reference.
    assert await act(story, "link", item, reference="NOSUCH1") == []
    # Settled receivable.
    await story.deferral("FCN320", "40.00", "2026-08-03")
    await story.pair("WO", "FCN320", "40.00", "2026-08-10", trace="EFT901")
    assert story.receivable("FCN320").status == "settled"
    assert await act(story, "link", item, reference="FCN320") == []
    # A receivable of the same payer but another payee (account).
    other = account_key(story.tenant, PAYER, "9999999999")
    op = OverpaymentDetected(
        receivable_id=story.rid("FCN330"),
        payer_id=PAYER,
        reference="FCN330",
        rule="story",
        evidence_channel="letter",
        evidence_amount=D("60.00"),
        principal=D("60.00"),
        determination_date=datetime(2026, 8, 3).date(),
        policy="medicare",
        source="letter",
    )
    await story.deliver(
        envelopes.build(
            op,
            event_id=stable_id("evidence", "FCN330"),
            event_type="OverpaymentDetected",
            tenant_id=story.tenant,
            account_key=other,
            causation_id="story",
        )
    )
    assert await act(story, "link", item, reference="FCN330") == []
    # The item of another account cannot be acted on through this one.
    assert await act(story, "assign", item, assignee="biller-2", payee="9999999999") == []

    assert [(k, o) for k, o, _ in outcomes(story, item)] == [("link", "rejected")] * 3 + [
        ("assign", "rejected")
    ]
    details = [d for _, _, d in outcomes(story, item)]
    assert "no receivable NOSUCH1" in details[0]
    assert "owes nothing" in details[1]
    assert "another account" in details[2]
    assert "no such work item" in details[3]
    pair = story.repo.pairs[story.tenant, item]
    assert (pair.bucket, pair.unmatched_amount) == ("unmatched", D("80.00"))
    assert story.repo.work_items.get((story.tenant, item)) is None


async def test_not_ours_moves_the_money_to_the_dismissed_bucket_with_who_and_when() -> None:
    story = LedgerStory()
    item = await parked_item(story, "65.00")
    outputs = await act(story, "not_ours", item)
    assert story.event_types(outputs) == ["OffsetDismissed"]
    offset = story.payloads("OffsetDismissed", outputs)[0]
    assert (offset["bucket"], offset["unmatched_amount"], offset["rematch_of"]) == (
        DISMISSED_BUCKET,
        "0.00",
        str(item),
    )
    pair = story.repo.pairs[story.tenant, item]
    assert (pair.bucket, pair.unmatched_amount) == (DISMISSED_BUCKET, D("0.00"))
    state = story.repo.work_items[story.tenant, item]
    assert (state.dismissed_amount, state.dismissed_by) == (D("65.00"), "biller-1")
    assert state.dismissed_at == datetime(2026, 9, 1, 10, tzinfo=UTC)
    # Redelivery and a second click change nothing; the money is never re-matched later.
    await act(story, "not_ours", item)
    await act(story, "not_ours", item, request="r2")
    assert story.repo.work_items[story.tenant, item].dismissed_amount == D("65.00")
    await story.deferral("UNKNOWN77", "65.00", "2026-08-03")  # the reference it named appears after all
    assert story.repo.pairs[story.tenant, item].unmatched_amount == D("0.00")
    assert allocated_to(story, item) == D("0.00")
    assert [(k, o) for k, o, _ in outcomes(story, item)] == [
        ("not_ours", "applied"),
        ("not_ours", "rejected"),
    ]


async def test_not_ours_on_a_deferral_without_reference_takes_it_out_of_the_queue() -> None:
    story = LedgerStory()
    env = story.pair_event("WO", None, "-45.00", "2026-08-24", trace="EFT902")
    await story.deliver(env)
    assert story.repo.pairs[story.tenant, env.event_id].bucket == "deferral"
    await act(story, "link", env.event_id, reference="FCN300")  # a deferral holds no money to link
    await act(story, "not_ours", env.event_id)
    pair = story.repo.pairs[story.tenant, env.event_id]
    assert (pair.bucket, pair.unmatched_amount) == (DISMISSED_BUCKET, D("0.00"))
    assert story.repo.work_items[story.tenant, env.event_id].dismissed_amount == D("-45.00")
    assert [o for _, o, _ in outcomes(story, env.event_id)] == ["rejected", "applied"]


async def test_assign_keeps_the_latest_and_notes_keep_their_history_without_logging_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    story = LedgerStory()
    item = await parked_item(story)
    caplog.set_level(logging.DEBUG)
    await act(story, "assign", item, assignee="biller-2", at="2026-09-01T10:00:00")
    await act(story, "assign", item, assignee="biller-3", at="2026-09-01T12:00:00")
    await act(story, "assign", item, assignee="biller-4", at="2026-09-01T11:00:00")  # late delivery, older
    assert story.repo.work_items[story.tenant, item].assignee == "biller-3"
    await act(story, "note", item, note=NOTE)
    await act(story, "note", item, note=NOTE)  # redelivered
    await act(story, "note", item, note="second note", request="r2")
    notes = [a.note for a in story.repo.work_item_actions.values() if a.kind == "note"]
    assert notes == [NOTE, "second note"]
    assert NOTE not in caplog.text and "Jane" not in caplog.text
    # Notes and assignment move no money.
    pair = story.repo.pairs[story.tenant, item]
    assert (pair.bucket, pair.unmatched_amount) == ("unmatched", D("80.00"))
    await act(story, "assign", item, at="2026-09-02T09:00:00", request="r3")  # unassign
    assert story.repo.work_items[story.tenant, item].assignee is None
