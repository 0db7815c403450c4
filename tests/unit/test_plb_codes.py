"""Every PLB reason code DOMAIN.md §2 lists, read by code and sign: only ``WO`` (and the review codes ``WU``,
``OB``, ``TL``) can reduce a receivable or enter the work queue; the others are classified, never applied."""

from decimal import Decimal

import pytest

from services.matching.domain import NEEDS_REVIEW, classify

D = Decimal
OTHERS = [
    "90",
    "AH",
    "AM",
    "AP",
    "B2",
    "B3",
    "BD",
    "BN",
    "C5",
    "CR",
    "CT",
    "CV",
    "CW",
    "DM",
    "E3",
    "FC",
    "GO",
    "HM",
    "IP",
    "IS",
    "LS",
    "OA",
    "PI",
    "PL",
    "RA",
    "RE",
]
CHARGES_AND_GARNISHMENTS = ["L6", "50", "51", "L3", "IR", "LE", "SL", "CS", "J1"]
ALL_CODES = ["WO", "FB", "72", "WU", "OB", "TL", *CHARGES_AND_GARNISHMENTS, *OTHERS]


def test_domain_lists_41_codes() -> None:
    assert len(set(ALL_CODES)) == 41


@pytest.mark.parametrize("code", CHARGES_AND_GARNISHMENTS + OTHERS)
@pytest.mark.parametrize("amount", [D("25.00"), D("-25.00")])
def test_codes_without_offset_meaning_are_classified_whatever_their_sign(code: str, amount: Decimal) -> None:
    assert classify(code, amount, "FCN1").action == "non_offset"


def test_oa_is_organ_acquisition_not_the_affiliated_provider_offset_ob() -> None:
    assert "OA" not in NEEDS_REVIEW and "OB" in NEEDS_REVIEW


@pytest.mark.parametrize("code", ["WU", "OB", "TL"])
def test_review_codes_withheld_go_to_the_work_queue_and_returned_are_classified(code: str) -> None:
    assert classify(code, D("10.00"), None).action == "review"
    assert classify(code, D("-10.00"), None).action == "non_offset"


def test_interest_paid_to_the_provider_and_garnishments_say_what_they_are() -> None:
    assert "interest owed by the payer" in classify("L6", D("-2.37"), None).reason
    assert "garnishment" in classify("IR", D("40.00"), None).reason
    assert "payer-specific" in classify("CS", D("12.00"), None).reason


def test_fb_sign_opens_or_applies_and_72_is_a_refund_not_cash() -> None:
    assert classify("FB", D("-180.00"), "EFT1").action == "forwarding_open"
    assert classify("FB", D("180.00"), "EFT1").action == "forwarding_apply"
    assert classify("72", D("-100.00"), "FCN1").action == "refund"
    assert "not new cash" in classify("72", D("-100.00"), "FCN1").reason
