"""Matching's pure decisions (``decisions``, ``forwarding_rules``): frozen values in, decisions out, no ledger."""

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import Allocation
from services.matching import decisions, forwarding_rules
from services.matching.domain import Candidate
from services.matching.records import ForwardingApplication, ForwardingBalance

D = Decimal


def quote(key: str) -> str:
    return f"<{key}>"


def candidate(rid: UUID, keys: tuple[str, ...], open_balance: str, determined: str) -> Candidate:
    return Candidate(str(rid), keys, D(open_balance), D(open_balance), date.fromisoformat(determined))


def test_a_lump_recoupment_goes_to_every_open_receivable_oldest_first() -> None:
    first, second = uuid4(), uuid4()
    pool = [
        candidate(first, ("FCN1",), "100.00", "2026-06-01"),
        candidate(second, ("FCN2",), "50.00", "2026-07-01"),
    ]
    targets = decisions.from_pool(pool, D("120.00"), None, date(2026, 7, 10), 0.8)
    assert targets == decisions.Targets((first, second), "oldest_first")


def test_an_unknown_reference_is_never_applied_below_the_threshold_but_suggested() -> None:
    rid = uuid4()
    pool = [
        candidate(rid, ("FCN-C-1",), "90.00", "2026-06-01"),
        candidate(uuid4(), ("FCN-C-2",), "90.00", "2026-06-02"),
    ]
    targets = decisions.from_pool(pool, D("90.00"), "UNKNOWN-REF", date(2026, 7, 1), 0.8)
    assert (targets.ids, targets.method) == ((), None)
    assert targets.suggestion is not None and "score" in targets.suggestion
    assert decisions.from_pool(pool, D("90.00"), "", date(2026, 7, 1), 0.8) == decisions.Targets((), None)


def test_a_recovery_is_explained_by_where_its_money_went() -> None:
    rid = uuid4()
    allocation = Allocation(receivable_id=rid, reference="FCN1", to_interest=D("0"), to_principal=D("100.00"))
    named = decisions.Targets((rid,), "reference")
    out = decisions.recovered([allocation], D("30.00"), named, True)
    assert (out.bucket, out.unmatched, out.reason) == (
        "allocated",
        D("30.00"),
        "recovered against FCN1 (reference); 30.00 exceeds the open balance",
    )
    settled = decisions.recovered([], D("80.00"), named, True)
    assert (settled.bucket, settled.reason) == ("unmatched", "every receivable it names is already settled")
    unknown = decisions.recovered([], D("80.00"), decisions.Targets((), None), False)
    assert unknown.reason == "no open receivable with this reference yet"


def test_a_refund_pair_without_its_receivable_waits_outside_the_work_queue() -> None:
    out = decisions.recovered([], D("80.00"), decisions.Targets((), None), False)
    waiting = decisions.awaiting_receivable(out, "FCN9")
    assert (waiting.bucket, waiting.unmatched, waiting.awaiting) == (
        "refund_acknowledged",
        D("0"),
        D("80.00"),
    )
    assert "FCN9" in waiting.reason


def test_a_positive_fb_without_reference_takes_the_oldest_balance_that_fits() -> None:
    balances = [
        ForwardingBalance("TRN-A", D("30.00"), D("0"), date(2026, 6, 1)),
        ForwardingBalance("TRN-B", D("80.00"), D("0"), date(2026, 6, 5)),
    ]
    decision = forwarding_rules.applied(D("50.00"), None, "EFT9", balances, [], quote)
    assert (decision.key, decision.moves) == ("TRN-B", ())
    assert (
        decision.reason is not None and "<TRN-B>" in decision.reason and "has no reference" in decision.reason
    )
    nowhere = forwarding_rules.applied(D("500.00"), None, " EFT9", balances, [], quote)
    assert nowhere.key == " EFT9"


def test_a_named_balance_is_reclaimed_from_fbs_that_did_not_name_it() -> None:
    balances = [
        ForwardingBalance("TRN-A", D("50.00"), D("50.00"), date(2026, 6, 1)),
        ForwardingBalance("TRN-B", D("50.00"), D("0"), date(2026, 6, 5)),
    ]
    early = ForwardingApplication(uuid4(), D("50.00"), "TRN-A", named=False)
    decision = forwarding_rules.applied(D("50.00"), "TRN-A", "EFT9", balances, [early], quote)
    assert decision.key == "TRN-A" and decision.reason is None
    [move] = decision.moves
    assert (move.adjustment_id, move.source, move.dest) == (early.adjustment_id, "TRN-A", "TRN-B")


def test_an_opened_balance_takes_back_what_arrived_before_it_while_it_fits() -> None:
    named = ForwardingApplication(uuid4(), D("70.00"), None, named=True)
    small = ForwardingApplication(uuid4(), D("20.00"), "TRN-X", named=False)
    too_big = ForwardingApplication(uuid4(), D("40.00"), "TRN-X", named=False)
    moves = forwarding_rules.opened("TRN-A", D("100.00"), [named, small, too_big], quote)
    assert [(m.adjustment_id, m.dest) for m in moves] == [
        (named.adjustment_id, "TRN-A"),
        (small.adjustment_id, "TRN-A"),
    ]
