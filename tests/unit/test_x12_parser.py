"""The X12 835 parser on hand-written files: what a payer really sends, and each way it can be wrong."""

from datetime import date
from decimal import Decimal

import pytest
from x12_builder import errors, parse_all, remittances, swap

from services.intake.feeds import FeedErrorReason, FeedParser, ParsedRemittance
from services.intake.x12 import X12Parser, codes

# A Medicare Part B 835: an ordinary claim, a reversal (CLP02=22, every amount negated) and its correction,
# then two PLB segments: a deferred recovery whose reference is Medicare-padded (19-character ICN + patient
# control number), L6 interest without a reference, a new deferral, and a refund acknowledged (72 + WO).
MEDICARE = """\
ISA*00*          *00*          *ZZ*01312          *ZZ*PROVSUBMITTER  *260803*0615*^*00501*000000201*0*P*:~
GS*HP*01312*PROVSUBMITTER*20260803*0615*201*X*005010X221A1~
ST*835*0001*005010X221A1~
BPR*I*430.37*C*ACH*CCP*01*011000028*DA*000012345*1561234567**01*021000021*DA*987654321*20260803~
TRN*1*EFT260803001*1561234567~
DTM*405*20260801~
N1*PR*MEDICARE PART B*XV*01312~
N3*PO BOX 100275~
N4*COLUMBIA*SC*292024275~
PER*CX*PROVIDER CONTACT CENTER*TE*8665026315~
PER*BL*EDI TECHNICAL SUPPORT*TE*8665026315*EM*EDI@EXAMPLE-MAC.GOV~
N1*PE*SUNNYVALE FAMILY MEDICINE*XX*1234567893~
N3*100 MAIN STREET~
N4*SPRINGFIELD*SC*290011234~
REF*TJ*561234567~
LX*1~
CLP*ACCT10001*1*200*128*32*MB*2226181100100*11*1~
NM1*QC*1*TESTPATIENT*ALEX****MI*1EG4TE5MK73~
DTM*050*20260720~
SVC*HC:99214:25*200*128**1~
DTM*472*20260714~
CAS*CO*45*40~
CAS*PR*2*32~
AMT*B6*160~
CLP*ACCT20417*22*-400*-250*-62.5*MB*2226183201000*11*1~
NM1*QC*1*SAMPLE*JORDAN****MI*2EG4TE5MK74~
SVC*HC:99215*-400*-250**1~
DTM*472*20260610~
CAS*CO*45*-87.5~
CAS*PR*2*-62.5~
CLP*ACCT20417*1*400*150*37.5*MB*2226183201001*11*1~
NM1*QC*1*SAMPLE*JORDAN****MI*2EG4TE5MK74~
REF*F8*2226183201000~
DTM*232*20260610~
DTM*233*20260611~
SVC*HC:99215*400*150**1~
DTM*472*20260610~
CAS*CO*45*212.5~
CAS*PR*2*37.5~
PLB*1234567893*20261231*WO:2226183201000      ACCT20417   *-100*L6*-2.37~
PLB*1234567893*20261231*WO:FCN26080300017*-300*72:FCN26070100003*-50*WO:FCN26070100003*50~
SE*40*0001~
GE*1*201~
IEA*1*000000201~
"""
PHI = ("TESTPATIENT", "ALEX", "SAMPLE", "JORDAN", "1EG4TE5MK73", "2EG4TE5MK74", "100 MAIN STREET")


def test_a_medicare_835_yields_the_remittance_its_claims_and_every_plb_pair() -> None:
    [parsed] = remittances(parse_all(MEDICARE))
    remittance = parsed.remittance
    assert (remittance.payer_id, remittance.payer_name) == ("01312", "MEDICARE PART B")
    assert (remittance.payee_id, remittance.payee_name) == ("1234567893", "SUNNYVALE FAMILY MEDICINE")
    assert remittance.trace_number == "EFT260803001"
    assert remittance.payment_date == date(2026, 8, 3)
    assert remittance.production_date == date(2026, 8, 1)
    assert remittance.total_paid == Decimal("430.37")
    assert remittance.total_claim_paid == Decimal("28.00")
    assert remittance.total_provider_adjustments == Decimal("-402.37")
    assert (remittance.claim_count, remittance.adjustment_count) == (3, 5)
    assert remittance.interchange_control_number == "000000201"
    assert (remittance.group_control_number, remittance.transaction_control_number) == ("201", "0001")
    assert remittance.feed == "x12_835"
    assert parsed.warnings == ()
    pairs = [
        (a.segment_ordinal, a.pair_index, a.reason_code, a.reference, a.amount) for a in parsed.adjustments
    ]
    assert pairs == [
        (38, 1, "WO", "2226183201000      ACCT20417", Decimal("-100.00")),
        (38, 2, "L6", None, Decimal("-2.37")),
        (39, 1, "WO", "FCN26080300017", Decimal("-300.00")),
        (39, 2, "72", "FCN26070100003", Decimal("-50.00")),
        (39, 3, "WO", "FCN26070100003", Decimal("50.00")),
    ]
    assert {a.provider_identifier for a in parsed.adjustments} == {"1234567893"}
    assert {a.fiscal_period_date for a in parsed.adjustments} == {date(2026, 12, 31)}
    assert {a.remittance_id for a in parsed.adjustments} == {remittance.remittance_id}


def test_reversal_has_negative_amounts_and_the_correction_points_back_to_it() -> None:
    [parsed] = remittances(parse_all(MEDICARE))
    first, reversal, correction = parsed.claims
    assert (first.claim_ordinal, first.segment_ordinal, first.paid) == (1, 15, Decimal("128.00"))
    [line] = first.services
    assert (line.line_ordinal, line.procedure_qualifier, line.procedure_code, line.modifiers) == (
        1,
        "HC",
        "99214",
        ("25",),
    )
    assert (line.charge, line.paid, line.units, line.service_date) == (
        Decimal("200.00"),
        Decimal("128.00"),
        Decimal("1"),
        date(2026, 7, 14),
    )
    assert [s.paid for s in reversal.services] == [Decimal("-250.00")]
    assert first.service_date_from == first.service_date_to == date(2026, 7, 14)
    assert (reversal.status_code, reversal.charge, reversal.paid) == (
        "22",
        Decimal("-400.00"),
        Decimal("-250.00"),
    )
    assert reversal.patient_responsibility == Decimal("-62.50")
    assert [(a.level, a.group_code, a.reason_code, a.amount) for a in reversal.adjustments] == [
        ("service", "CO", "45", Decimal("-87.50")),
        ("service", "PR", "2", Decimal("-62.50")),
    ]
    assert reversal.payer_claim_control_number == "2226183201000"
    assert correction.original_reference == "2226183201000"
    assert correction.payer_claim_control_number == "2226183201001"
    assert correction.patient_control_number == reversal.patient_control_number == "ACCT20417"
    assert (correction.service_date_from, correction.service_date_to) == (
        date(2026, 6, 10),
        date(2026, 6, 11),
    )
    assert correction.service_line_count == 1


def test_claim_level_cas_and_service_cas_both_count_toward_the_claim() -> None:
    text = swap(MEDICARE, "CLP*ACCT10001*1*200*128*32", "CLP*ACCT10001*1*210*128*32")
    text = swap(text, "NM1*QC*1*TESTPATIENT", "CAS*OA*23*10~\nNM1*QC*1*TESTPATIENT")
    text = swap(text, "SE*40*0001", "SE*41*0001")
    [parsed] = remittances(parse_all(text))
    levels = [(a.level, a.group_code, a.amount) for a in parsed.claims[0].adjustments]
    assert levels[0] == ("claim", "OA", Decimal("10.00"))
    assert ("service", "CO", Decimal("40.00")) in levels


def test_missing_per_bl_is_a_warning_not_a_failure() -> None:
    text = swap(MEDICARE, "PER*BL*EDI TECHNICAL SUPPORT*TE*8665026315*EM*EDI@EXAMPLE-MAC.GOV~\n", "")
    text = swap(text, "SE*40*0001", "SE*39*0001")
    [parsed] = remittances(parse_all(text))
    assert any("PER*BL" in w for w in parsed.warnings)
    bare = swap(MEDICARE, "PER*BL*EDI TECHNICAL SUPPORT*TE*8665026315*EM*EDI@EXAMPLE-MAC.GOV~", "PER*BL~")
    [parsed] = remittances(parse_all(bare))
    assert parsed.warnings == (
        "payer loop 1000A PER*BL has no contact number (PER03 qualifier and PER04) required by the guide",
    )


def test_zero_payment_notification_balances() -> None:
    text = swap(
        MEDICARE,
        "BPR*I*430.37*C*ACH*CCP*01*011000028*DA*000012345*1561234567**01*021000021*DA*987654321*",
        "BPR*H*0*C*NON************",
    )
    text = swap(
        text, "PLB*1234567893*20261231*WO:FCN26080300017*-300*", "PLB*1234567893*20261231*WO:FCN2608*402.37*"
    )
    text = swap(text, "*-100*L6*-2.37~", "*-372*L6*-2.37~")
    [parsed] = remittances(parse_all(text))
    assert (parsed.remittance.handling_code, parsed.remittance.payment_method) == ("H", "NON")
    assert parsed.remittance.total_paid == Decimal("0.00")
    assert parsed.remittance.total_provider_adjustments == Decimal("28.00")


@pytest.mark.parametrize(
    ("element", "component", "terminator", "newline"),
    [
        ("|", "^", "!", ""),
        ("*", ":", "~", "\r\n"),
        ("^", "\\", "'", "\n"),
        ("*", ">", "\n", ""),
    ],
)
def test_any_delimiters_and_line_breaks_give_the_same_result(
    element: str, component: str, terminator: str, newline: str
) -> None:
    text = (
        MEDICARE.replace("*^*00501*", "*{*00501*")
        .replace("~\n", "\x00")
        .replace("*", "\x01")
        .replace(":", "\x02")
    )
    text = text.replace("\x00", terminator + newline).replace("\x01", element).replace("\x02", component)
    [parsed] = remittances(parse_all(text))
    [expected] = remittances(parse_all(MEDICARE))
    assert parsed.claims == expected.claims
    assert parsed.adjustments == expected.adjustments
    assert parsed.remittance.remittance_id == expected.remittance.remittance_id


def test_the_same_transaction_in_other_bytes_keeps_its_remittance_id() -> None:
    [original] = remittances(parse_all(MEDICARE))
    [reissued] = remittances(parse_all(MEDICARE.replace("~\n", "~\r\n"), file_name="reissued.835"))
    assert reissued.remittance.remittance_id == original.remittance.remittance_id
    [other] = remittances(parse_all(MEDICARE.replace("EFT260803001", "EFT260803002")))
    assert other.remittance.remittance_id != original.remittance.remittance_id


def test_a_broken_transaction_does_not_hide_the_good_one() -> None:
    body = MEDICARE[MEDICARE.index("ST*835") : MEDICARE.index("GE*")]
    broken = swap(body.replace("*0001", "*0002"), "CLP*ACCT10001*1*200*128*32", "CLP*ACCT10001*1*200*127*32")
    text = MEDICARE.replace("GE*1*201", broken + "GE*2*201")
    results = parse_all(text)
    [good] = [r for r in results if isinstance(r, ParsedRemittance)]
    [error] = errors(results)
    assert good.remittance.transaction_control_number == "0001"
    assert error.reason is FeedErrorReason.UNBALANCED
    assert (error.transaction_index, error.transaction_control_number) == (2, "0002")
    assert (error.segment_ordinal, error.segment_id, error.element) == (15, "CLP", "CLP04")
    assert "128.00" in error.message and "127.00" in error.message
    assert error.interchange_control_number == "000000201"


def test_wrong_se01_is_an_envelope_error_naming_the_right_count() -> None:
    [error] = errors(parse_all(swap(MEDICARE, "SE*40*0001", "SE*38*0001")))
    assert error.reason is FeedErrorReason.ENVELOPE
    assert (error.segment_id, error.element, error.segment_ordinal) == ("SE", "SE01", 40)
    assert error.expected is not None and error.expected.startswith("40")


def test_group_and_interchange_counts_and_control_numbers_are_checked() -> None:
    text = swap(swap(MEDICARE, "GE*1*201", "GE*2*202"), "IEA*1*000000201", "IEA*3*000000201")
    results = parse_all(text)
    assert len([r for r in results if isinstance(r, ParsedRemittance)]) == 1
    assert [(e.segment_id, e.element) for e in errors(results)] == [
        ("GE", "GE01"),
        ("GE", "GE02"),
        ("IEA", "IEA01"),
    ]
    assert errors(results)[0].segment_ordinal == 43


def test_invalid_plb_reason_code_is_rejected_with_the_code_and_position() -> None:
    [error] = errors(parse_all(swap(MEDICARE, "*72:FCN26070100003*", "*ZZ:FCN26070100003*")))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert (error.segment_ordinal, error.segment_id, error.element) == (39, "PLB", "PLB05-1")
    assert "'ZZ'" in error.message


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("SVC*HC:99214:25*200*128**1", "SVC*HC:99214*200*129**1", (18, "SVC", "SVC03")),
        ("CLP*ACCT20417*1*400*150*", "CLP*ACCT20417*1*400*151*", (29, "CLP", "CLP04")),
        ("BPR*I*430.37*", "BPR*I*430.36*", (2, "BPR", "BPR02")),
    ],
)
def test_imbalances_name_segment_element_and_both_amounts(
    old: str, new: str, where: tuple[int, str, str]
) -> None:
    [error] = errors(parse_all(swap(MEDICARE, old, new)))
    assert error.reason is FeedErrorReason.UNBALANCED
    assert (error.segment_ordinal, error.segment_id, error.element) == where
    declared = new.split("*")[3] if where[1] != "BPR" else "430.36"
    assert f"{Decimal(declared):.2f}" in error.message


def test_unknown_and_misplaced_segments_are_kept_as_warnings() -> None:
    text = swap(MEDICARE, "AMT*B6*160~", "AMT*B6*160~\nZZZ*SECRET VALUE~\nN3*SOMEWHERE~")
    text = swap(text, "SE*40*0001", "SE*42*0001")
    [parsed] = remittances(parse_all(text))
    assert len(parsed.warnings) == 2
    assert "ZZZ ×1" in parsed.warnings[0] and "#23" in parsed.warnings[0]
    assert "N3 in service loop 2110" in parsed.warnings[1] and "#24" in parsed.warnings[1]
    assert not any("SECRET" in w or "SOMEWHERE" in w for w in parsed.warnings)


def test_errors_never_quote_patient_data() -> None:
    broken = [
        swap(MEDICARE, "NM1*QC*1*TESTPATIENT*ALEX", "NM1*QC*1*TESTPATIENT~ALEX"),
        swap(MEDICARE, "CLP*ACCT10001*1*200*128*32", "CLP*ACCT10001*1*200*1EG4TE5MK73*32"),
        swap(MEDICARE, "SVC*HC:99214:25*200*128**1", "SVC*HC:99214:25*200*128**1~SAMPLE*JORDAN"),
    ]
    for text in broken:
        for result in parse_all(text):
            shown = " ".join(result.warnings) if isinstance(result, ParsedRemittance) else str(result)
            assert not any(value in shown for value in PHI), shown


def test_several_interchanges_with_their_own_delimiters_in_one_file() -> None:
    second = (
        MEDICARE.replace("~\n", "!").replace("*", "|").replace(":", "^").replace("000000201", "000000202")
    )
    results = remittances(parse_all(MEDICARE + second))
    assert [r.remittance.interchange_control_number for r in results] == ["000000201", "000000202"]
    assert [r.remittance.transaction_index for r in results] == [1, 2]
    assert results[0].adjustments[0].reference == results[1].adjustments[0].reference


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        ("*987654321*20260803~", "*987654321*20260231~", "BPR16"),
        ("CLP*ACCT10001*1*200*128*32", "CLP*ACCT10001*1*200*128.001*32", "CLP04"),
        ("CLP*ACCT10001*1*", "CLP*ACCT10001*7*", "CLP02"),
        ("CAS*CO*45*40~", "CAS*CR*45*40~", "CAS01"),
        ("PLB*1234567893*20261231*WO:2226", "PLB*1234567893*2026*WO:2226", "PLB02"),
        ("*WO:FCN26070100003*50~", "*WO:FCN26070100003~", "PLB08"),
        ("SVC*HC:99214:25*200*128**1~", "SVC*HC:99214:25*200*128**ONE~", "SVC05"),
    ],
)
def test_invalid_elements_are_named(old: str, new: str, element: str) -> None:
    [error] = errors(parse_all(swap(MEDICARE, old, new)))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert error.element == element


def test_units_paid_are_svc05_or_one_and_units_submitted_svc07() -> None:
    """005010X221A1: SVC05 is required only when the units paid are not one, so an absent SVC05 means one;
    SVC07 counts the units originally submitted (a drug billed as 8 units, paid as 1), never those paid."""
    cases = {
        "SVC*HC:99214:25*200*128**1~": (Decimal(1), None),
        "SVC*HC:99214:25*200*128~": (Decimal(1), None),
        "SVC*HC:99214:25*200*128****8~": (Decimal(1), Decimal(8)),
        "SVC*HC:99214:25*200*128**3**4~": (Decimal(3), Decimal(4)),
        "SVC*HC:99214:25*200*128**2.5~": (Decimal("2.5"), None),
    }
    for svc, expected in cases.items():
        [parsed] = remittances(parse_all(swap(MEDICARE, "SVC*HC:99214:25*200*128**1~", svc)))
        line = parsed.claims[0].services[0]
        assert (line.units, line.units_submitted) == expected, svc
    [parsed] = remittances(
        parse_all(swap(MEDICARE, "SVC*HC:99214:25*200*128**1~", "SVC*HC:99214:25*200*128**1**TWO~"))
    )
    assert parsed.claims[0].services[0].units_submitted is None
    assert parsed.warnings == (
        "SVC07 (units submitted) of service line 1 of claim 1 is not a number; ignored",
    )


def test_a_missing_payment_date_is_said_to_be_missing() -> None:
    """A BPR with too few elements (the date lands in BPR15) names BPR16 as missing, not as a bad date."""
    [error] = errors(parse_all(swap(MEDICARE, "*DA*987654321*20260803~", "*20260803~")))
    assert (error.element, error.message.split(" (")[0]) == ("BPR16", "BPR16 is missing")


def test_the_guide_version_is_st03_or_else_gs08_and_only_an_unknown_guide_warns() -> None:
    """Many payers leave ST03 out; GS08 then names the guide. 005010X221(A1) and 004010X091(A1) are read
    with their own code lists; any other version is worth a warning, naming the element it was read from."""
    for text, warning in (
        (MEDICARE, None),
        (MEDICARE.replace("ST*835*0001*005010X221A1", "ST*835*0001"), None),
        (MEDICARE.replace("005010X221A1", "005010X221"), None),
        (as_4010(MEDICARE, "GS08"), None),
        (as_4010(MEDICARE, "ST03"), None),
        (
            MEDICARE.replace("ST*835*0001*005010X221A1", "ST*835*0001*003051"),
            "ST03 version 003051 is not 005010X221A1 or 004010X091A1; read as 005010X221A1",
        ),
    ):
        [parsed] = remittances(parse_all(text))
        assert parsed.warnings == (() if warning is None else (warning,))


def as_4010(text: str, where: str) -> str:
    """The fixture naming the 4010 guide in GS08 (ST03 left out) or in ST03 (GS08 still says 5010)."""
    if where == "GS08":
        return swap(
            swap(text, "ST*835*0001*005010X221A1", "ST*835*0001"), "*X*005010X221A1", "*X*004010X091A1"
        )
    return swap(text, "ST*835*0001*005010X221A1", "ST*835*0001*004010X091A1")


def test_each_guide_version_has_its_own_table_of_what_differs() -> None:
    """One table per guide: 4010 adds CAS01 CR (corrections and reversals, withdrawn in 5010) and the CLP02
    codes 5010 removed (5, 10, 13, 15, 16, 17 "not advised" but usable, X12 RFI 457; 27); PER*BL is a 5010
    requirement; the PLB reason codes are the same 41."""
    assert codes.guide_for("005010X221A1") is codes.GUIDE_5010
    assert codes.guide_for("005010X221") is codes.GUIDE_5010
    assert codes.guide_for("004010X091A1") is codes.GUIDE_4010
    assert codes.guide_for("004010X091") is codes.GUIDE_4010
    assert codes.guide_for("003051") is None and codes.guide_for("") is None
    new, old = codes.GUIDE_5010, codes.GUIDE_4010
    assert old.cas_group_codes - new.cas_group_codes == {"CR"}
    assert new.cas_group_codes == {"CO", "OA", "PI", "PR"} <= old.cas_group_codes
    assert old.claim_status_codes - new.claim_status_codes == set(ONLY_4010_STATUSES)
    assert new.claim_status_codes < old.claim_status_codes
    assert old.plb_reason_codes == new.plb_reason_codes and len(new.plb_reason_codes) == 41
    assert (new.payer_contact_required, old.payer_contact_required) == (True, False)


# A 4010 claim with a CR (correction and reversal) adjustment, as 4010 payers sent it: the claim balances
# with it, and the guide listed CR, so it posts; under 5010 the same segment is refused.
CR_SWAPS = (("CAS*CO*45*40~", "CAS*CO*45*30~\nCAS*CR*45*10~"), ("SE*40*0001", "SE*41*0001"))
ONLY_4010_STATUSES = ("5", "10", "13", "15", "16", "17", "27")
STATUS_SWAPS = tuple((("CLP*ACCT10001*1*", f"CLP*ACCT10001*{status}*"),) for status in ONLY_4010_STATUSES)


@pytest.mark.parametrize(
    "swaps",
    [CR_SWAPS, *STATUS_SWAPS],
    ids=["CAS01 CR", *(f"CLP02 {s}" for s in ONLY_4010_STATUSES)],
)
@pytest.mark.parametrize("where", ["GS08", "ST03"])
def test_codes_only_4010_has_are_read_in_4010_and_refused_in_5010(
    swaps: tuple[tuple[str, str], ...], where: str
) -> None:
    text5010 = MEDICARE
    for old, new in swaps:
        text5010 = swap(text5010, old, new)
    [parsed] = remittances(parse_all(as_4010(text5010, where)))
    assert parsed.warnings == ()
    claim = parsed.claims[0]
    assert claim.paid == Decimal("128.00")
    if swaps is CR_SWAPS:
        assert [(a.group_code, a.amount) for a in claim.adjustments][:2] == [
            ("CO", Decimal("30.00")),
            ("CR", Decimal("10.00")),
        ]
    else:
        assert claim.status_code == swaps[0][1].split("*")[2]
    [error] = errors(parse_all(text5010))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert error.element == ("CAS01" if swaps is CR_SWAPS else "CLP02")
    assert "not valid in 005010X221A1" in error.message
    assert error.expected is not None and "CR" not in error.expected.split()


def test_a_4010_transaction_still_refuses_codes_neither_guide_has() -> None:
    for old, new, element in (
        ("CAS*CO*45*40~", "CAS*XX*45*40~", "CAS01"),
        ("CLP*ACCT10001*1*", "CLP*ACCT10001*7*", "CLP02"),
        ("*L6*-2.37~", "*ZZ*-2.37~", "PLB05-1"),
    ):
        [error] = errors(parse_all(as_4010(swap(MEDICARE, old, new), "GS08")))
        assert (error.reason, error.element) == (FeedErrorReason.INVALID_ELEMENT, element)
        if element == "CAS01":
            assert "not valid in 004010X091A1" in error.message
            assert error.expected == "one of CO CR OA PI PR"


def test_per_bl_is_a_5010_requirement_only() -> None:
    """4010's payer loop has only an optional PER*CX: no PER*BL is no warning there."""
    without = swap(MEDICARE, "PER*BL*EDI TECHNICAL SUPPORT*TE*8665026315*EM*EDI@EXAMPLE-MAC.GOV~\n", "")
    without = swap(without, "SE*40*0001", "SE*39*0001")
    [parsed5010] = remittances(parse_all(without))
    assert parsed5010.warnings == (
        "payer loop 1000A has no PER*BL (technical contact) required by the guide",
    )
    [parsed4010] = remittances(parse_all(as_4010(without, "ST03")))
    assert parsed4010.warnings == ()


def test_one_file_mixing_4010_and_5010_groups_reads_each_by_its_own_version() -> None:
    """The guide is chosen per transaction: a CR adjustment posts in the 4010 group of a file and is refused
    in its 5010 group, even though both share the file's memo of CAS triples."""
    cr = MEDICARE
    for old, new in CR_SWAPS:
        cr = swap(cr, old, new)
    second = (
        cr.replace("000000201", "000000202").replace("*201*X*", "*202*X*").replace("GE*1*201", "GE*1*202")
    )
    results = parse_all(as_4010(cr, "GS08") + second)
    [good] = remittances([r for r in results if isinstance(r, ParsedRemittance)])
    assert good.remittance.interchange_control_number == "000000201"
    [error] = errors(results)
    assert (error.interchange_control_number, error.element) == ("000000202", "CAS01")


def test_structure_errors() -> None:
    [no_payee] = errors(parse_all(swap(swap(MEDICARE, "N1*PE*", "N1*XX*"), "SE*40", "SE*40")))
    assert (no_payee.reason, no_payee.segment_id) == (FeedErrorReason.MISSING_SEGMENT, "LX")
    [not_835] = errors(parse_all(swap(MEDICARE, "ST*835*", "ST*837*")))
    assert (not_835.reason, not_835.element) == (FeedErrorReason.UNSUPPORTED, "ST01")
    no_se = parse_all(swap(MEDICARE, "SE*40*0001~\n", ""))
    assert [(e.reason, e.segment_id) for e in errors(no_se)] == [(FeedErrorReason.ENVELOPE, "GE")]


def test_not_x12_and_sniffing() -> None:
    parser = X12Parser()
    assert isinstance(parser, FeedParser)
    assert parser.sniff(b"\xef\xbb\xbf\r\n  ISA*00*")
    assert parser.sniff(MEDICARE.encode()[:64])
    assert not parser.sniff(b"claim_id,amount\n")
    assert not parser.sniff(b"ISAAC NEWTON")
    [error] = errors(parse_all("claim_id,amount\nA1,100\n"))
    assert error.reason is FeedErrorReason.UNKNOWN_FORMAT
    [cut] = errors(parse_all(MEDICARE[:60]))
    assert (cut.reason, cut.segment_id) == (FeedErrorReason.ENVELOPE, "ISA")
