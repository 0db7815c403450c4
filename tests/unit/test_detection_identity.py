"""Receivable identity decided for a whole batch in pure code (``services.detection.identity``): what each piece of
evidence joins, opens or merges, and the end state the store writes once."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from services.detection.domain import Evidence, KnownEvidence
from services.detection.identity import (
    Alias,
    DetectedReceivable,
    Item,
    Placement,
    Snapshot,
    place_all,
    wanted,
)
from shared.ids import receivable_id, stable_id

D = Decimal
T, ACCOUNT, PAYER = "clinic", "acct-1", "01312"
EMPTY = Snapshot(frozenset(), (), {}, {})


def letter(reference: str, amount: str, day: int, *claims: str) -> Evidence:
    """A demand letter for ``reference`` naming ``claims``."""
    return Evidence(
        evidence_id=stable_id("letter", reference),
        rule="demand_letter",
        channel="letter",
        subject=f"letter:{reference}",
        reference=reference,
        amount=D(amount),
        evidence_date=date(2026, 3, day),
        source="demand letter",
        claim_references=claims,
    )


def item(*evidence: Evidence) -> Item:
    return Item(T, ACCOUNT, PAYER, "medicare", evidence)


def rid(reference: str) -> UUID:
    return receivable_id(T, PAYER, reference)


def test_evidence_naming_nothing_known_opens_a_receivable_under_its_reference() -> None:
    placement = place_all(EMPTY, [item(letter("FCN-A", "100.00", 1, "ICN1"))])
    [[placed]] = placement.placed
    assert (placed.receivable_id, placed.absorbed, placed.principal) == (rid("FCN-A"), (), D("100.00"))
    assert {a.key for a in placement.new_aliases} == {"FCN-A", "ICN1"}
    assert [r.reference for r in placement.rows] == ["FCN-A"]


def test_a_later_input_of_the_batch_merges_receivables_opened_earlier_in_it() -> None:
    # FCN-A and FCN-B open two receivables; FCN-C names both their claims: one debt, the older day 0 survives
    a, b = letter("FCN-A", "100.00", 5, "ICN1"), letter("FCN-B", "150.00", 2, "ICN2")
    c = letter("FCN-C", "200.00", 9, "ICN1", "ICN2")
    placement = place_all(EMPTY, [item(a), item(b), item(c)])
    [_, _, [merged]] = placement.placed
    assert merged.receivable_id == rid("FCN-B")
    assert merged.absorbed == (rid("FCN-A"),)
    assert merged.determination_date == date(2026, 3, 2)
    # every piece of evidence ends under the survivor; the absorbed row says where it went
    assert {r for _, r, _ in placement.new_evidence} == {rid("FCN-B")}
    assert {r.receivable_id: r.merged_into for r in placement.rows} == {
        rid("FCN-A"): rid("FCN-B"),
        rid("FCN-B"): None,
    }
    assert {a.receivable_id for a in placement.new_aliases} == {rid("FCN-B")}
    assert placement.moved == ((T, rid("FCN-A"), rid("FCN-B")),)


def test_a_stored_receivable_joined_then_absorbed_in_one_batch_takes_its_stored_evidence_along() -> None:
    # FCN-OLD is stored with a letter; the batch opens FCN-X, joins FCN-OLD by its claim, then links the two
    old = DetectedReceivable(
        T, rid("FCN-OLD"), ACCOUNT, PAYER, "FCN-OLD", "medicare", D("50.00"), date(2026, 3, 7)
    )
    stored = Snapshot(
        frozenset(),
        (Alias(T, ACCOUNT, "ICN9", old.receivable_id),),
        {(T, old.receivable_id): old},
        {(T, old.receivable_id): (KnownEvidence("letter", "letter:FCN-OLD", D("50.00"), date(2026, 3, 7)),)},
    )
    x = letter("FCN-X", "30.00", 1, "ICN8")
    new = letter("FCN-NEW", "80.00", 3, "ICN9")  # joins FCN-OLD and moves its day 0 to day 3
    link = letter("FCN-L", "10.00", 9, "ICN8", "ICN9")
    placement: Placement = place_all(stored, [item(x), item(new), item(link)])
    [_, [joined], [merged]] = placement.placed
    assert (joined.receivable_id, joined.absorbed) == (old.receivable_id, ())
    assert (joined.principal, joined.determination_date) == (D("130.00"), date(2026, 3, 3))
    assert (merged.receivable_id, merged.absorbed) == (rid("FCN-X"), (old.receivable_id,))  # day 1 is older
    assert merged.principal == D("170.00")  # four letters, the stored one moved over too
    assert placement.moved == ((T, old.receivable_id, rid("FCN-X")),)
    assert {r for _, r, _ in placement.new_evidence} == {rid("FCN-X")}


def test_evidence_already_recorded_is_not_placed_again() -> None:
    a = letter("FCN-A", "100.00", 1)
    placement = place_all(Snapshot(frozenset({a.evidence_id}), (), {}, {}), [item(a), item(a)])
    assert placement.placed == ((), ()) and placement.rows == () and placement.new_evidence == ()


def test_what_a_batch_reads_is_sorted_so_two_workers_lock_accounts_in_one_order() -> None:
    items = [
        Item(T, "acct-2", PAYER, "medicare", (letter("FCN-B", "1.00", 1),)),
        item(letter("FCN-A", "1.00", 1)),
    ]
    want = wanted([*items, Item(T, "acct-3", PAYER, "", ())])
    assert want.accounts == ((T, ACCOUNT), (T, "acct-2"))
    assert set(want.named) == {(T, "acct-2", "FCN-B"), (T, ACCOUNT, "FCN-A")}
