"""Detection: the built-in rules and how evidence about one overpayment merges."""

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import (
    ClaimAdjustment,
    ClaimPaymentReceived,
    LetterReceived,
    ProviderAdjustmentReceived,
    ServicePayment,
)
from services.detection.domain import determination_date, merged_principal
from services.detection.rules import (
    DeferredRecoveryRule,
    DuplicatePaymentRule,
    FeeSchedule,
    FeeScheduleRule,
    LetterRule,
    PaidAboveChargeRule,
    ReversalCorrectionRule,
)

D = Decimal
REMIT = uuid4()


def claim(
    status: str,
    paid: str,
    icn: str,
    ordinal: int,
    f8: str | None = None,
    remit: UUID = REMIT,
    charge: str = "300.00",
    carcs: tuple[str, ...] = (),
) -> ClaimPaymentReceived:
    return ClaimPaymentReceived(
        remittance_id=remit,
        payer_id="01312",
        trace_number="EFT1",
        payment_date=date(2026, 8, 3),
        claim_ordinal=ordinal,
        segment_ordinal=10 + ordinal,
        patient_control_number="PCN1",
        status_code=status,
        charge=D(charge),
        paid=D(paid),
        payer_claim_control_number=icn,
        original_reference=f8,
        service_line_count=1,
        service_date_from=date(2026, 7, 1),
        service_date_to=date(2026, 7, 1),
        adjustments=tuple(
            ClaimAdjustment(level="claim", group_code="OA", reason_code=c, amount=D("0.00")) for c in carcs
        ),
    )


def plb(code: str, amount: str, reference: str | None) -> ProviderAdjustmentReceived:
    return ProviderAdjustmentReceived(
        remittance_id=REMIT,
        payer_id="01312",
        trace_number="EFT1",
        payment_date=date(2026, 8, 3),
        segment_ordinal=40,
        pair_index=1,
        provider_identifier="1234567893",
        fiscal_period_date=date(2026, 12, 31),
        reason_code=code,
        reference=reference,
        amount=D(amount),
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
    assert (
        ReversalCorrectionRule().on_claim(claim("1", "300.00", "N", 2), [claim("22", "-250.00", "O", 1)])
        == []
    )


def test_negative_wo_opens_a_receivable_with_the_medicare_fcn() -> None:
    padded = "FCN26080300017     PCN1001"
    [evidence] = DeferredRecoveryRule().on_adjustment(plb("WO", "-300.00", padded))
    assert (evidence.reference, evidence.amount) == ("FCN26080300017", D("300.00"))
    assert DeferredRecoveryRule().on_adjustment(plb("WO", "300.00", "FCN1")) == []
    assert DeferredRecoveryRule().on_adjustment(plb("L6", "-3.00", None)) == []


def test_evidence_of_different_channels_confirms_while_the_same_channel_adds() -> None:
    # reversal/correction (claim) + negative WO (deferral) + letter about one overpayment → 100, not 300
    assert merged_principal(
        [("claim", "c1", D("100.00")), ("deferral", "p1", D("100.00")), ("letter", "l1", D("100.00"))]
    ) == D("100.00")
    # two deferrals under one reference → two debts
    assert merged_principal([("deferral", "p1", D("100.00")), ("deferral", "p2", D("50.00"))]) == D("150.00")
    # two rules flagging the same claim → one overpayment (the larger finding)
    assert merged_principal([("claim", "c1", D("40.00")), ("claim", "c1", D("250.00"))]) == D("250.00")
    assert merged_principal([]) == D("0.00")


def test_a_letter_date_is_day_zero_even_when_other_evidence_came_first() -> None:
    assert determination_date([("deferral", date(2026, 8, 3)), ("letter", date(2026, 8, 10))]) == date(
        2026, 8, 10
    )
    assert determination_date([("deferral", date(2026, 8, 3)), ("claim", date(2026, 7, 1))]) == date(
        2026, 7, 1
    )


def test_same_claim_paid_twice_in_two_remittances_is_a_duplicate() -> None:
    first = claim("1", "120.00", "ICN-A", 1)
    again = claim("1", "120.00", "ICN-B", 1, remit=uuid4())
    [evidence] = DuplicatePaymentRule().on_claim(again, [first])
    assert (evidence.reference, evidence.amount, evidence.claim_references) == (
        "ICN-B",
        D("120.00"),
        ("ICN-A", "ICN-B"),
    )


def test_a_payment_reversed_before_being_paid_again_is_not_a_duplicate() -> None:
    first = claim("1", "120.00", "ICN-A", 1)
    reversal = claim("22", "-120.00", "ICN-A", 2)
    again = claim("1", "120.00", "ICN-B", 1, remit=uuid4())
    assert DuplicatePaymentRule().on_claim(again, [first, reversal]) == []


def test_carc_18_on_a_paid_claim_signals_a_duplicate() -> None:
    [evidence] = DuplicatePaymentRule().on_claim(claim("1", "80.00", "ICN-C", 1, carcs=("18",)), [])
    assert evidence.amount == D("80.00")
    assert DuplicatePaymentRule().on_claim(claim("4", "0.00", "ICN-C", 1, carcs=("18",)), []) == []


def test_paid_above_charge() -> None:
    [evidence] = PaidAboveChargeRule().on_claim(claim("1", "350.00", "ICN-D", 1, charge="300.00"), [])
    assert evidence.amount == D("50.00")
    assert PaidAboveChargeRule().on_claim(claim("1", "300.00", "ICN-D", 1), []) == []


def test_paid_above_the_fee_schedule_beyond_tolerance() -> None:
    schedule = FeeSchedule(
        [
            ("01312", "99213", "", D("90.00"), date(2026, 1, 1), None),
            ("01312", "99213", "25", D("95.00"), date(2026, 1, 1), date(2026, 6, 30)),
        ]
    )
    rule = FeeScheduleRule(schedule=schedule, tolerance=D("0.50"))
    lines = (
        ServicePayment(
            line_ordinal=1,
            procedure_qualifier="HC",
            procedure_code="99213",
            charge=D("150.00"),
            paid=D("100.00"),
            units=D("1"),
            service_date=date(2026, 7, 1),
        ),
        ServicePayment(
            line_ordinal=2,
            procedure_qualifier="HC",
            procedure_code="99213",
            modifiers=("25",),
            charge=D("150.00"),
            paid=D("90.40"),
            units=D("1"),
            service_date=date(2026, 7, 1),
        ),
    )
    over = claim("1", "190.40", "ICN-E", 1).model_copy(update={"services": lines})
    [evidence] = rule.on_claim(over, [])
    # line 1: 100.00 − 90.00 = 10.00 (flagged); line 2: the "25" entry expired, base 90.00, 0.40 ≤ tolerance
    assert evidence.amount == D("10.00")


def test_letters_and_provider_identified_overpayments_are_evidence() -> None:
    letter = LetterReceived(
        letter_id=uuid4(),
        kind="demand_letter",
        payer_id="01312",
        payee_id="1234567893",
        reference=" FCN26080300017 ",
        amount=D("300.00"),
        letter_date=date(2026, 8, 10),
        entered_by="staff-1",
    )
    [evidence] = LetterRule().on_letter(letter)
    assert (evidence.channel, evidence.reference, evidence.amount) == (
        "letter",
        "FCN26080300017",
        D("300.00"),
    )
    found = LetterRule().on_letter(letter.model_copy(update={"kind": "provider_identified"}))
    assert found[0].channel == "provider_identified"


def line(ordinal: int, charge: str, paid: str) -> ServicePayment:
    return ServicePayment(
        line_ordinal=ordinal,
        procedure_qualifier="HC",
        procedure_code=f"9921{ordinal}",
        charge=D(charge),
        paid=D(paid),
        units=D("1"),
        service_date=date(2026, 7, 1),
    )


def with_lines(
    paid: str, lines: tuple[ServicePayment, ...], *cas: tuple[str, str, str]
) -> ClaimPaymentReceived:
    """A claim of service lines; ``cas`` = (group, CARC, amount) at service level, as the 835 reader reports
    them (the contract does not say which line a service-level CAS sits on)."""
    charge = sum((s.charge for s in lines), D("0.00"))
    return claim("1", paid, "ICN-L", 1, charge=str(charge)).model_copy(
        update={
            "services": lines,
            "service_line_count": len(lines),
            "adjustments": tuple(
                ClaimAdjustment(level="service", group_code=g, reason_code=r, amount=D(a)) for g, r, a in cas
            ),
        }
    )


def test_one_line_denied_as_a_duplicate_while_the_others_are_paid_is_not_an_overpayment() -> None:
    # Line 1 (100.00) denied CO-18, paid 0; line 2 paid 120.00 after a CO-45 contractual write-down.
    denied = with_lines(
        "120.00",
        (line(1, "100.00", "0.00"), line(2, "150.00", "120.00")),
        ("CO", "18", "100.00"),
        ("CO", "45", "30.00"),
    )
    assert DuplicatePaymentRule().on_claim(denied, []) == []
    # B13 ("previously paid") on the denied line reads the same way.
    b13 = with_lines(
        "120.00",
        (line(1, "100.00", "0.00"), line(2, "150.00", "120.00")),
        ("CO", "B13", "100.00"),
        ("CO", "45", "30.00"),
    )
    assert DuplicatePaymentRule().on_claim(b13, []) == []


def test_a_duplicate_flag_on_a_line_that_was_paid_anyway_owes_back_that_line() -> None:
    # The payer flags line 2 as an exact duplicate (OA-18, nothing adjusted) yet pays it: 60.00 paid twice.
    flagged = with_lines(
        "160.00", (line(1, "100.00", "100.00"), line(2, "60.00", "60.00")), ("OA", "18", "0.00")
    )
    # Either line could carry a zero-amount flag: only what is surely paid on a flagged line is owed.
    [evidence] = DuplicatePaymentRule().on_claim(flagged, [])
    assert (evidence.amount, evidence.reference) == (D("60.00"), "ICN-L")
    # A single-line claim: the flag can only sit on that line.
    [single] = DuplicatePaymentRule().on_claim(
        with_lines("80.00", (line(1, "80.00", "80.00"),), ("OA", "18", "0.00")), []
    )
    assert single.amount == D("80.00")


def test_a_claim_paid_twice_is_a_duplicate_even_when_one_of_its_lines_is_denied_as_one() -> None:
    # DOMAIN.md: an earlier claim already paid the same service. The second payment is owed back whole.
    first = claim("1", "120.00", "ICN-A", 1)
    again = with_lines(
        "120.00",
        (line(1, "100.00", "0.00"), line(2, "150.00", "120.00")),
        ("CO", "18", "100.00"),
        ("CO", "45", "30.00"),
    ).model_copy(update={"remittance_id": uuid4(), "service_date_from": first.service_date_from})
    [evidence] = DuplicatePaymentRule().on_claim(again, [first])
    assert evidence.amount == D("120.00")
