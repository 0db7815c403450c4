"""Detection: the built-in rules and how evidence about one overpayment merges."""

from datetime import date
from decimal import Decimal
from uuid import uuid4

from contracts.events import ClaimPaymentReceived, ProviderAdjustmentReceived
from services.detection.domain import determination_date, merged_principal
from services.detection.rules import DeferredRecoveryRule, ReversalCorrectionRule

D = Decimal
REMIT = uuid4()


def claim(status: str, paid: str, icn: str, ordinal: int, f8: str | None = None) -> ClaimPaymentReceived:
    return ClaimPaymentReceived(
        remittance_id=REMIT, payer_id="01312", trace_number="EFT1", payment_date=date(2026, 8, 3),
        claim_ordinal=ordinal, segment_ordinal=10 + ordinal, patient_control_number="PCN1", status_code=status,
        charge=D("300.00"), paid=D(paid), payer_claim_control_number=icn, original_reference=f8,
        service_line_count=1,
    )


def plb(code: str, amount: str, reference: str | None) -> ProviderAdjustmentReceived:
    return ProviderAdjustmentReceived(
        remittance_id=REMIT, payer_id="01312", trace_number="EFT1", payment_date=date(2026, 8, 3),
        segment_ordinal=40, pair_index=1, provider_identifier="1234567893", fiscal_period_date=date(2026, 12, 31),
        reason_code=code, reference=reference, amount=D(amount),
    )


def test_reversal_then_lower_correction_is_an_overpayment_keyed_by_the_original_icn() -> None:
    reversal = claim("22", "-250.00", "ICN-ORIG", 1)
    correction = claim("1", "150.00", "ICN-NEW", 2, f8="ICN-ORIG")
    [evidence] = ReversalCorrectionRule().on_claim(correction, [reversal])
    assert (evidence.reference, evidence.amount, evidence.channel) == ("ICN-ORIG", D("100.00"), "claim")


def test_a_reversal_already_paired_is_not_paired_again() -> None:
    reversal = claim("22", "-250.00", "ICN-ORIG", 1)
    first = claim("1", "150.00", "ICN-NEW", 2)
    later = claim("1", "100.00", "ICN-OTHER", 3)
    assert ReversalCorrectionRule().on_claim(later, [reversal, first]) == []


def test_higher_correction_is_an_underpayment_not_an_overpayment() -> None:
    assert ReversalCorrectionRule().on_claim(claim("1", "300.00", "N", 2), [claim("22", "-250.00", "O", 1)]) == []


def test_negative_wo_opens_a_receivable_with_the_medicare_fcn() -> None:
    padded = "FCN26080300017     PCN1001"
    [evidence] = DeferredRecoveryRule().on_adjustment(plb("WO", "-300.00", padded))
    assert (evidence.reference, evidence.amount) == ("FCN26080300017", D("300.00"))
    assert DeferredRecoveryRule().on_adjustment(plb("WO", "300.00", "FCN1")) == []
    assert DeferredRecoveryRule().on_adjustment(plb("L6", "-3.00", None)) == []


def test_evidence_of_different_channels_confirms_while_the_same_channel_adds() -> None:
    # reversal/correction (claim) + negative WO (deferral) about one overpayment → principal 100, not 200
    assert merged_principal([("claim", D("100.00")), ("deferral", D("100.00"))]) == D("100.00")
    # two deferrals under one reference → two debts
    assert merged_principal([("deferral", D("100.00")), ("deferral", D("50.00"))]) == D("150.00")
    assert merged_principal([]) == D("0.00")


def test_a_letter_date_is_day_zero_even_when_other_evidence_came_first() -> None:
    assert determination_date([("deferral", date(2026, 8, 3)), ("letter", date(2026, 8, 10))]) == date(2026, 8, 10)
    assert determination_date([("deferral", date(2026, 8, 3)), ("claim", date(2026, 7, 1))]) == date(2026, 7, 1)
