"""A file's transactions are classified against the file's own earlier postings as well as the ledger's answer
(``domain.PostedInFile``): intake asks the ledger about a whole file at once, before recording any of it, and
must still find a reissue or a conflict of a transaction posted earlier in the same file, as the
one-at-a-time loop did.

Story: one payment (payer, payee, TRN02, payment date) under several ST02 control numbers, with the same money
(a reissue) or other money (a conflict)."""

from decimal import Decimal

import pytest
from x12_builder import Claim, Service, Transaction, build_835, parse_all, remittances

from services.intake import domain
from services.intake.feeds import ParsedRemittance

D = Decimal


def transactions(*shapes: tuple[str, str, str]) -> list[ParsedRemittance]:
    """One file's transactions, each (ST02, TRN02 trace number, the one claim's charge)."""
    txns = [
        Transaction([Claim(f"PCN{st02}", [Service(D(charge))])], trace=trace, st02=st02)
        for st02, trace, charge in shapes
    ]
    return remittances(parse_all(build_835(*txns)))


def test_a_file_s_first_posting_of_a_payment_makes_its_later_ones_reissues_or_conflicts() -> None:
    first, reissue, conflict, other = transactions(
        ("0001", "EFT1", "100.00"),
        ("0002", "EFT1", "100.00"),
        ("0003", "EFT1", "90.00"),
        ("0004", "EFT2", "100.00"),
    )
    so_far = domain.PostedInFile()
    # Nothing posted yet: the ledger's answer stands.
    assert so_far.posted_before(first, None) is None
    so_far.add(first)
    # The same payment, the same money, new control numbers: a reissue of the file's first transaction.
    assert so_far.posted_before(reissue, None) == "reissue"
    # The same payment with other money: a conflict.
    assert so_far.posted_before(conflict, None) == "conflict"
    # Another trace number is another payment.
    assert so_far.posted_before(other, None) is None


def test_the_strongest_earlier_posting_decides_between_the_ledger_and_the_file() -> None:
    first, conflict, reissue_of_conflict = transactions(
        ("0001", "EFT1", "100.00"), ("0002", "EFT1", "90.00"), ("0003", "EFT1", "90.00")
    )
    so_far = domain.PostedInFile()
    so_far.add(first)
    so_far.add(conflict)
    # A conflict of the file's first transaction, but the same money as its second: a reissue.
    assert so_far.posted_before(reissue_of_conflict, None) == "reissue"
    # The ledger's reissue beats the file's conflict, and the same identity beats everything.
    fresh = domain.PostedInFile()
    fresh.add(first)
    assert fresh.posted_before(conflict, "reissue") == "reissue"
    assert fresh.posted_before(conflict, "same") == "same"
    # The file's reissue beats the ledger's conflict.
    assert so_far.posted_before(reissue_of_conflict, "conflict") == "reissue"
    # A transaction posted in the file is the same remittance if asked about again.
    assert so_far.posted_before(first, None) == "same"


def test_a_transaction_not_added_does_not_count_as_posted() -> None:
    """What was skipped (posted before) or refused (too large) was never recorded: the caller does not add
    it, and a later transaction of that payment is judged by the ledger alone."""
    refused, later = transactions(("0001", "EFT1", "100.00"), ("0002", "EFT1", "90.00"))
    so_far = domain.PostedInFile()
    assert so_far.posted_before(refused, None) is None
    assert so_far.posted_before(later, None) is None
    assert so_far.posted_before(later, "conflict") == "conflict"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((None, None), None),
        ((None, "conflict"), "conflict"),
        (("reissue", "conflict"), "reissue"),
        (("conflict", "same"), "same"),
        (("reissue", None), "reissue"),
    ],
)
def test_strongest_follows_the_ledger_query_s_order(
    answers: tuple[domain.PostedBefore | None, ...], expected: domain.PostedBefore | None
) -> None:
    assert domain.strongest(*answers) == expected


def test_money_compares_as_the_ledger_stores_it() -> None:
    """Two places, as ``numeric(14,2)``: 100.00 and 100.0 are the same money (a reissue), a cent is not."""
    first, same, cent = transactions(
        ("0001", "EFT1", "100.00"), ("0002", "EFT1", "100.0"), ("0003", "EFT1", "100.01")
    )
    so_far = domain.PostedInFile()
    so_far.add(first)
    assert so_far.posted_before(same, None) == "reissue"
    assert so_far.posted_before(cent, None) == "conflict"
