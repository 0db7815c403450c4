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


def fb(
    amount: str, named: str | None, paid: str, trace: str, now: str | None = None
) -> ForwardingApplication:
    return ForwardingApplication(uuid4(), D(amount), now, named, date.fromisoformat(paid), trace, 1, 1)


def test_a_positive_fb_without_reference_takes_the_oldest_balance_that_fits() -> None:
    balances = [
        ForwardingBalance("TRN-A", D("30.00"), D("0"), date(2026, 6, 1)),
        ForwardingBalance("TRN-B", D("80.00"), D("0"), date(2026, 6, 5)),
    ]
    unnamed, too_big = fb("50.00", None, "2026-07-01", "EFT9"), fb("500.00", None, "2026-07-02", "EFT10")
    placed = forwarding_rules.assign(balances, [unnamed, too_big], quote)
    decision = placed[unnamed.adjustment_id]
    assert decision.key == "TRN-B"
    assert (
        decision.reason is not None and "<TRN-B>" in decision.reason and "has no reference" in decision.reason
    )
    assert placed[too_big.adjustment_id] == forwarding_rules.Placement("EFT10", forwarding_rules.UNPLACED)


def test_a_named_balance_is_reclaimed_from_fbs_that_did_not_name_it() -> None:
    balances = [
        ForwardingBalance("TRN-A", D("50.00"), D("50.00"), date(2026, 6, 1)),
        ForwardingBalance("TRN-B", D("50.00"), D("0"), date(2026, 6, 5)),
    ]
    early = fb("50.00", None, "2026-07-01", "EFT8", now="TRN-A")
    named = fb("50.00", "TRN-A", "2026-06-20", "EFT9")
    placed = forwarding_rules.assign(balances, [early, named], quote)
    assert placed[named.adjustment_id] == forwarding_rules.Placement("TRN-A", None)
    [move] = forwarding_rules.moves([early], placed, quote)
    assert (move.adjustment_id, move.source, move.dest) == (early.adjustment_id, "TRN-A", "TRN-B")


def test_an_opened_balance_takes_back_what_arrived_before_it_while_it_fits() -> None:
    balances = [ForwardingBalance("TRN-A", D("100.00"), D("0"), date(2026, 6, 1))]
    named = fb("70.00", "TRN-A", "2026-06-10", "EFT1", now="TRN-A")
    small = fb("20.00", None, "2026-06-11", "EFT2", now="EFT2")
    too_big = fb("40.00", None, "2026-06-12", "EFT3", now="EFT3")
    before = fb("5.00", None, "2026-05-30", "EFT0", now="EFT0")
    stored = [named, small, too_big, before]
    moves = forwarding_rules.moves(stored, forwarding_rules.assign(balances, stored, quote), quote)
    assert [(m.adjustment_id, m.dest) for m in moves] == [(small.adjustment_id, "TRN-A")]


def test_unnamed_fbs_are_placed_in_business_date_order_whatever_came_first() -> None:
    """Finding 10 (payer 60054 in CI): an unnamed FB of 0.51 arrived first and took the older balance, so the
    unnamed FB of 122.43 that the older balance was carried for found no room and waited on a key of its own."""
    balances = [
        ForwardingBalance("T12", D("122.43"), D("0.51"), date(2026, 1, 12)),
        ForwardingBalance("T16", D("0.51"), D("0"), date(2026, 1, 16)),
        ForwardingBalance("T14", D("0"), D("122.43"), None),
    ]
    big = fb("122.43", None, "2026-01-14", "T14", now="T14")
    small = fb("0.51", None, "2026-01-18", "T18", now="T12")
    placed = forwarding_rules.assign(balances, [small, big], quote)
    assert (placed[big.adjustment_id].key, placed[small.adjustment_id].key) == ("T12", "T16")
    moves = forwarding_rules.moves([small, big], placed, quote)
    assert [(m.adjustment_id, m.source, m.dest) for m in moves] == [
        (big.adjustment_id, "T14", "T12"),
        (small.adjustment_id, "T12", "T16"),
    ]
