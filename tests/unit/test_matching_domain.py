"""Matching's pure rules: what each PLB pair means and how money is applied (interest first)."""

from decimal import Decimal
from uuid import uuid4

import pytest

from services.matching.domain import Balance, PeriodPosting, apply_recovery, classify, period_count, status_of

D = Decimal


@pytest.mark.parametrize(
    ("code", "amount", "reference", "action"),
    [
        ("WO", D("100.00"), "FCN1", "recover"),
        ("WO", D("-100.00"), "FCN1", "deferral"),
        ("WO", D("100.00"), None, "review"),
        ("FB", D("-180.00"), "EFT1", "forwarding_open"),
        ("FB", D("180.00"), "EFT1", "forwarding_apply"),
        ("72", D("-50.00"), "FCN1", "refund"),
        ("WU", D("10.00"), None, "review"),
        ("OB", D("10.00"), "X", "review"),
        ("TL", D("10.00"), "X", "review"),
        ("L6", D("-2.37"), None, "non_offset"),
        ("CR", D("5.00"), None, "non_offset"),
        ("IR", D("5.00"), None, "non_offset"),
    ],
)
def test_classify_reads_code_and_sign(code: str, amount: Decimal, reference: str | None, action: str) -> None:
    assert classify(code, amount, reference).action == action


def test_capitation_interest_is_not_recoupment() -> None:
    # CR is capitation interest in 5010, a classic misreading as "credit/recoupment".
    assert "capitation" in classify("CR", D("5.00"), None).reason


def test_recovery_goes_to_interest_first_then_principal() -> None:
    balance = Balance(principal=D("300.00"), interest_accrued=D("2.88"))
    applied = apply_recovery(D("100.00"), balance)
    assert (applied.to_interest, applied.to_principal, applied.remainder) == (
        D("2.88"),
        D("97.12"),
        D("0.00"),
    )


def test_recovery_beyond_the_open_balance_leaves_a_remainder() -> None:
    balance = Balance(principal=D("100.00"), principal_recovered=D("60.00"))
    applied = apply_recovery(D("75.00"), balance)
    assert (applied.to_interest, applied.to_principal, applied.remainder) == (
        D("0.00"),
        D("40.00"),
        D("35.00"),
    )


def test_status_follows_the_balance() -> None:
    assert status_of(Balance(D("100.00"))) == "open"
    assert status_of(Balance(D("100.00"), D("40.00"))) == "partially_recovered"
    assert status_of(Balance(D("100.00"), D("100.00"))) == "settled"
    assert status_of(Balance(D("100.00"), D("100.00"), D("2.88"))) == "partially_recovered"


def test_split_is_judged_by_business_date_not_arrival() -> None:
    from datetime import date

    from services.matching.domain import Dated, split_in_date_order

    charge = Dated("i1", date(2026, 9, 3), D("2.88"))  # period 1 charged on day 31
    early = Dated("r1", date(2026, 8, 24), D("100.00"))  # before the charge: all principal
    late = Dated("r2", date(2026, 9, 14), D("200.00"))  # after: interest first
    for recoveries in ([late, early], [early, late]):  # whatever order the events were seen in
        split = split_in_date_order([charge], recoveries, D("300.00"))
        assert split == {"r1": (D("0.00"), D("100.00")), "r2": (D("2.88"), D("197.12"))}
    # a correction that cancels the charge moves the money back to principal
    cancel = Dated("i1v2", date(2026, 9, 20), D("-2.88"))
    split = split_in_date_order([charge, cancel], [early, late], D("300.00"))
    assert split["r2"] == (
        D("2.88"),
        D("197.12"),
    )  # still due on 09-14; the later correction is not retroactive


def test_a_deferral_without_a_reference_asks_staff_to_identify_the_overpayment() -> None:
    assert "identify" in classify("WO", D("-75.00"), None).reason
    assert "identify" not in classify("WO", D("-75.00"), "FCN1").reason


def test_a_forwarding_balance_applied_without_its_reference_goes_to_the_oldest_that_can_take_it() -> None:
    from datetime import date

    from services.matching.domain import OpenForwarding, forwarding_for

    older = OpenForwarding("EFT1", D("100.00"), date(2026, 8, 3))
    newer = OpenForwarding("EFT2", D("250.00"), date(2026, 8, 10))
    same_day = OpenForwarding("EFT0", D("250.00"), date(2026, 8, 10))
    # Oldest first, but never beyond what a balance still holds.
    assert forwarding_for(D("100.00"), [newer, older]) == "EFT1"
    assert forwarding_for(D("200.00"), [newer, older]) == "EFT2"
    assert forwarding_for(D("200.00"), [newer, same_day]) == "EFT0"
    # Nothing open can take it: no guess.
    assert forwarding_for(D("300.00"), [newer, older]) is None
    assert forwarding_for(D("10.00"), []) is None


def test_recovery_never_takes_more_than_the_open_balance_when_interest_is_over_recovered() -> None:
    # An interest correction arrived before the charge it corrects: recoveries hold 1.92 more interest than
    # is charged, so although 2.40 of principal is unrecovered the receivable owes only 0.48.
    balance = Balance(principal=D("50.00"), principal_recovered=D("47.60"), interest_accrued=D("-1.92"))
    assert balance.open == D("0.48")
    for interest_first in (True, False):
        applied = apply_recovery(D("2.40"), balance, interest_first=interest_first)
        assert (applied.to_interest, applied.to_principal, applied.remainder) == (
            D("0.00"),
            D("0.48"),
            D("1.92"),
        )


def test_an_interest_period_counts_only_while_its_postings_sum_to_zero_or_more() -> None:
    charge, reversal, again = (PeriodPosting(uuid4(), D(a), held=True) for a in ("0.48", "-0.48", "-0.48"))
    # The reversal overtook its charge: the period counts for nothing, nothing changes.
    alone = period_count([reversal])
    assert (alone.counts, alone.flipped, alone.change) == (False, (), D("0.00"))
    # The charge arrives: both count, and together they change nothing.
    both = period_count([charge, reversal])
    assert (both.counts, both.flipped, both.change) == (True, (charge, reversal), D("0.00"))
    # In order: the charge counts (+0.48); a second reversal would take the period below zero, so the whole
    # period stops counting (-0.48) until the charge it reverses arrives.
    counted = PeriodPosting(charge.event_id, charge.amount, held=False)
    assert period_count([counted]).change == D("0.00")
    below = period_count([counted, reversal, again])
    assert (below.counts, below.flipped, below.change) == (False, (counted,), D("-0.48"))
