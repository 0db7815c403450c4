"""The example files under examples/835 parse cleanly, balance, and say what examples/README.md says."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from x12_builder import parse_all, remittances

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "835"
FILES = sorted(EXAMPLES.glob("*.835"))

# file → (BPR02, ΣCLP04, PLB pairs as (reason, reference, amount), BPR16)
STORY = {
    "2026-08-03_medicare_deferred.835": (
        "584.57",
        "184.57",
        [("WO", "2226183201000", "-100.00"), ("WO", "FCN26080300017", "-300.00")],
        "2026-08-03",
    ),
    "2026-08-24_medicare_recovery.835": (
        "210.60",
        "308.23",
        [("WO", "2226183201000", "100.00"), ("L6", None, "-2.37")],
        "2026-08-24",
    ),
    "2026-09-14_medicare_forwarding.835": (
        "0.00",
        "120.00",
        [("WO", "FCN26080300017", "300.00"), ("FB", "EFT260914001", "-180.00")],
        "2026-09-14",
    ),
    "2026-10-05_medicare_fb_applied.835": (
        "395.00",
        "500.00",
        [("FB", "EFT260914001", "180.00"), ("WO", "FCN26100500042", "-75.00")],
        "2026-10-05",
    ),
}


def test_every_story_file_is_there() -> None:
    assert [f.name for f in FILES] == sorted(STORY)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_parses_without_error_and_balances(path: Path) -> None:
    [parsed] = remittances(parse_all(path.read_bytes(), file_name=path.name))
    remittance = parsed.remittance
    total, claims_paid, pairs, paid_on = STORY[path.name]
    assert parsed.warnings == ()
    assert remittance.total_paid == Decimal(total)
    assert remittance.total_claim_paid == Decimal(claims_paid) == sum(c.paid for c in parsed.claims)
    assert remittance.total_claim_paid - remittance.total_provider_adjustments == remittance.total_paid
    assert [(a.reason_code, a.reference, f"{a.amount}") for a in parsed.adjustments] == pairs
    assert remittance.payment_date == date.fromisoformat(paid_on)
    assert (remittance.payer_id, remittance.payee_id) == ("01312", "1234567893")
    assert remittance.trace_number == "EFT" + path.name[2:10].replace("-", "") + "001"
    for claim in parsed.claims:
        assert claim.charge - sum(a.amount for a in claim.adjustments) == claim.paid


def test_the_deferred_file_holds_the_reversal_and_its_correction() -> None:
    [parsed] = remittances(parse_all((EXAMPLES / "2026-08-03_medicare_deferred.835").read_bytes()))
    reversal, correction = parsed.claims[-2:]
    assert (reversal.status_code, reversal.paid, reversal.payer_claim_control_number) == (
        "22",
        Decimal("-250.00"),
        "2226183201000",
    )
    assert all(a.amount < 0 for a in reversal.adjustments)
    assert (correction.paid, correction.original_reference) == (Decimal("150.00"), "2226183201000")
    assert correction.payer_claim_control_number == "2226183201001"
