"""Matching's engine on receivables themselves, in memory: evidence that opens, grows or only informs a
receivable; claim netting and the deferral that undoes it; merges of two receivables proved to be one debt;
staff steps (appeals, write-offs) including those that arrive before their receivable."""

import uuid
from decimal import Decimal

from matching.ledger_story import LedgerStory

D = Decimal


async def test_evidence_opens_grows_or_only_informs_the_receivable() -> None:
    story = LedgerStory()
    opened = await story.evidence("FCN10", "100.00", "2026-06-01", channel="claim")
    assert story.event_types(opened) == ["ReceivableOpened"]
    # Step: the same evidence again (another detection rule confirming it) adds nothing.
    assert await story.evidence("FCN10", "100.00", "2026-06-01", channel="claim", source="other rule") == []
    # Step: evidence of a duplicate payment and an earlier overpaid payment date: facts the policies read.
    updated = await story.evidence(
        "FCN10", "100.00", "2026-06-01", source="dup", duplicate=True, original_payment_date="2026-05-01"
    )
    assert story.event_types(updated) == ["ReceivableUpdated"]
    assert story.payloads("ReceivableUpdated", updated)[0]["change_amount"] == "0.00"
    row = story.receivable("FCN10")
    assert (row.duplicate, row.original_payment_date.isoformat() if row.original_payment_date else None) == (
        True,
        "2026-05-01",
    )
    # Step: a letter moves day 0 and raises the principal.
    grown = await story.evidence(
        "FCN10", "150.00", "2026-05-20", channel="letter", evidence="50.00", source="letter"
    )
    assert story.event_types(grown) == ["ReceivableIncreased"]
    row = story.receivable("FCN10")
    assert (row.principal, row.determination_date.isoformat()) == (D("150.00"), "2026-05-20")


async def test_a_settled_receivable_owes_again_when_its_principal_grows() -> None:
    story = LedgerStory()
    await story.deferral("FCN20", "100.00", "2026-06-01")
    await story.pair("WO", "FCN20", "100.00", "2026-06-10")
    assert story.receivable("FCN20").status == "settled"
    await story.evidence("FCN20", "140.00", "2026-06-01", evidence="40.00", source="second reversal")
    assert story.receivable("FCN20").status == "partially_recovered"


async def test_claim_netting_recovers_the_overpayment_unless_the_remittance_defers_it() -> None:
    netted, deferred, undone = LedgerStory(), LedgerStory(), LedgerStory()
    remittance = uuid.uuid4()
    # Pattern 1: a reversal and a lower correction in one remittance net the difference in the claim amounts.
    await netted.evidence("6660000000001", "100.00", "2026-08-03", channel="claim", netted_in=remittance)
    row = netted.receivable("6660000000001")
    assert (row.principal_recovered, row.status) == (D("100.00"), "settled")
    assert netted.allocation_kinds() == ["netting"]
    # Pattern 3: a negative WO in that same remittance defers it (arriving first) …
    await deferred.pair("WO", "6660000000001", "-100.00", "2026-08-03", remittance=remittance)
    await deferred.evidence("6660000000001", "100.00", "2026-08-03", channel="claim", netted_in=remittance)
    assert deferred.receivable("6660000000001").status == "open"
    await deferred.pair("WO", "6660000000001", "100.00", "2026-08-24", trace="EFTN00003")
    assert deferred.receivable("6660000000001").status == "settled"
    # … or arriving after the netting was applied: the netting is undone.
    await undone.evidence("6660000000001", "100.00", "2026-08-03", channel="claim", netted_in=remittance)
    outputs = await undone.pair("WO", "6660000000001", "-100.00", "2026-08-03", remittance=remittance)
    row = undone.receivable("6660000000001")
    assert (row.principal_recovered, row.status) == (D("0.00"), "open")
    assert undone.event_types(outputs) == ["RecoveryDeferred", "ReceivableIncreased"]


async def test_a_deferral_without_reference_raises_an_alert_to_identify_it() -> None:
    story = LedgerStory()
    outputs = await story.pair("WO", None, "-45.00", "2026-08-03", trace="EFT-D-1")
    assert story.event_types(outputs) == ["RecoveryDeferred", "AlertRaised"]
    [alert] = story.payloads("AlertRaised", outputs)
    assert (alert["kind"], alert["amount"]) == ("deferral_without_reference", "45.00")
    assert story.pairs() == [("WO", "deferral", D("0.00"))]


async def test_two_receivables_proved_one_debt_merge_with_their_recoveries() -> None:
    story = LedgerStory()
    # Step: a deferral citing the letter's FCN opens one receivable and 40.00 is recovered on it …
    await story.deferral("FCN-A", "100.00", "2026-06-01")
    await story.pair("WO", "FCN-A", "40.00", "2026-06-10")
    # … while the reversal's claim number opened another for the same debt.
    await story.evidence("ICN-B", "100.00", "2026-06-01", channel="claim", claims=("ICN-B",))
    # Step: detection links them: FCN-A is merged into ICN-B.
    outputs = await story.evidence(
        "ICN-B", "100.00", "2026-06-01", channel="letter", merged=("FCN-A",), source="letter"
    )
    assert story.event_types(outputs) == ["ReceivableMerged", "ReceivableMerged"]
    gone, keep = story.receivable("FCN-A"), story.receivable("ICN-B")
    assert (gone.status, gone.principal, gone.merged_into) == ("merged", D("0.00"), keep.receivable_id)
    assert (keep.principal_recovered, keep.status) == (D("40.00"), "partially_recovered")
    # Step: the next recoupment names the absorbed FCN: it lands on the survivor.
    await story.pair("WO", "FCN-A", "60.00", "2026-06-20")
    assert story.receivable("ICN-B").status == "settled"
    # Step: a write-off staff enter under the absorbed reference follows the merge (nothing left to write off).
    assert story.event_types(await story.staff("write_off", "FCN-A", "2026-06-25")) == [
        "ReceivableWrittenOff"
    ]


async def test_an_appeal_pauses_recoupment_which_is_still_applied_and_a_decision_resumes_or_closes() -> None:
    story = LedgerStory()
    await story.deferral("FCNB", "400.00", "2026-06-01")
    paused = await story.staff("appeal_filed", "FCNB", "2026-06-20")
    assert story.event_types(paused) == ["ReceivablePaused"]
    await story.pair("WO", "FCNB", "100.00", "2026-07-15")
    row = story.receivable("FCNB")
    assert (row.status, row.paused, row.principal_recovered) == ("paused", True, D("100.00"))
    # Step: the appeal is upheld (the payer keeps recouping) …
    assert story.event_types(await story.staff("appeal_decided", "FCNB", "2026-08-01", outcome="upheld")) == [
        "ReceivableResumed"
    ]
    assert story.receivable("FCNB").status == "partially_recovered"
    # … then staff write off 50.00, then the rest.
    await story.staff("write_off", "FCNB", "2026-08-10", amount="50.00")
    assert story.receivable("FCNB").written_off == D("50.00")
    await story.staff("write_off", "FCNB", "2026-08-20")
    row = story.receivable("FCNB")
    assert (row.written_off, row.status, str(row.written_off_in_full)) == (
        D("300.00"),
        "written_off",
        "2026-08-20",
    )
    # Step: interest of a period due before the write-off, charged later, is written off with it.
    await story.interest("FCNB", 1, "2026-06-01", "2026-06-30", "3.83")
    row = story.receivable("FCNB")
    assert (row.status, row.written_off) == ("written_off", D("303.83"))


async def test_a_staff_action_before_its_receivable_waits_for_it() -> None:
    story = LedgerStory()
    assert await story.staff("appeal_filed", "FCNP", "2026-06-20") == []
    assert len(story.repo.pending) == 1
    outputs = await story.evidence("FCNP", "80.00", "2026-06-01", channel="letter")
    assert story.event_types(outputs) == ["ReceivableOpened", "ReceivablePaused"]
    assert story.receivable("FCNP").paused
    assert story.repo.pending == {}
