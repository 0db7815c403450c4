"""Envelope and segment-shape edge cases: stray segments, padded ISA, full CAS and PLB segments."""

from decimal import Decimal

from test_plb_codes import ALL_CODES
from test_x12_parser import MEDICARE
from x12_builder import errors, parse_all, remittances, swap

from services.intake.feeds import FeedErrorReason, ParsedRemittance
from services.intake.x12.codes import PLB_REASON_CODES


def test_exactly_the_41_plb_reason_codes_of_domain_md() -> None:
    assert len(PLB_REASON_CODES) == 41
    assert set(ALL_CODES) == PLB_REASON_CODES


def test_segments_outside_a_transaction_warn_on_the_next_one_or_become_an_error_at_the_end() -> None:
    before = swap(MEDICARE, "ST*835*0001", "TA1*000000201*260803*0615*A*000~\nST*835*0001")
    [parsed] = remittances(parse_all(before))
    assert any("TA1 (file segment #3)" in w for w in parsed.warnings)
    after = swap(MEDICARE, "GE*1*201", "XYZ*SOMETHING~\nGE*1*201")
    results = parse_all(after)
    assert isinstance(results[0], ParsedRemittance) and results[0].warnings == ()
    [error] = errors(results)
    assert error.reason is FeedErrorReason.UNSUPPORTED and "XYZ" in error.message


def test_a_mis_padded_isa_is_read_with_a_warning() -> None:
    text = swap(MEDICARE, "*ZZ*01312          *", "*ZZ*01312*")
    [parsed] = remittances(parse_all(text))
    assert any("ISA is not the fixed 106 characters" in w for w in parsed.warnings)


def test_six_cas_triples_with_quantities_and_six_plb_pairs() -> None:
    text = swap(MEDICARE, "CAS*CO*45*40~", "CAS*CO*45*5*1*45*5**45*5*2*45*5**45*5*1.5*45*15~")
    text = swap(text, "*-100*L6*-2.37~", "*-100*L6*-2.37*L6*-1*L6*1*CS:ADJ1*-0.5*CS*0.5~")
    [parsed] = remittances(parse_all(text))
    cas = [(a.amount, a.quantity) for a in parsed.claims[0].adjustments if a.group_code == "CO"]
    assert cas == [
        (Decimal("5.00"), Decimal("1")),
        (Decimal("5.00"), None),
        (Decimal("5.00"), Decimal("2")),
        (Decimal("5.00"), None),
        (Decimal("5.00"), Decimal("1.5")),
        (Decimal("15.00"), None),
    ]
    first_plb = [
        (a.pair_index, a.reason_code, a.reference) for a in parsed.adjustments if a.segment_ordinal == 38
    ]
    assert first_plb == [
        (1, "WO", "2226183201000      ACCT20417"),
        (2, "L6", None),
        (3, "L6", None),
        (4, "L6", None),
        (5, "CS", "ADJ1"),
        (6, "CS", None),
    ]


def test_more_than_six_triples_or_pairs_is_refused() -> None:
    [cas] = errors(
        parse_all(swap(MEDICARE, "CAS*CO*45*40~", "CAS*CO*45*5*1*45*5**45*5*2*45*5**45*5*1.5*45*10**45*5~"))
    )
    assert (cas.reason, cas.segment_id, cas.segment_ordinal) == (FeedErrorReason.INVALID_ELEMENT, "CAS", 20)
    [plb] = errors(parse_all(swap(MEDICARE, "*-100*L6*-2.37~", "*-100*L6*-2.37*L6*0*L6*0*L6*0*L6*0*L6*0~")))
    assert (plb.reason, plb.segment_id, plb.element) == (FeedErrorReason.INVALID_ELEMENT, "PLB", "PLB15")


def test_a_debit_remittance_balances_against_a_negative_total() -> None:
    text = swap(MEDICARE, "BPR*I*430.37*C*", "BPR*I*430.37*D*")
    [error] = errors(parse_all(text))
    assert error.element == "BPR02" and "(debit)" in error.message
    text = swap(swap(text, "*-300*72:FCN", "*560.74*72:FCN"), "BPR*I*430.37*", "BPR*I*430.37*")
    [parsed] = remittances(parse_all(text))
    assert parsed.remittance.credit_debit == "D"
    assert parsed.remittance.total_claim_paid - parsed.remittance.total_provider_adjustments == Decimal(
        "-430.37"
    )


def test_a_file_wrapped_at_a_fixed_width_reads_as_the_unwrapped_one() -> None:
    """Mainframes and some clearinghouses wrap an 835 at 80 columns (or 132, …), breaking segments, element
    values and even the ISA across lines; the line breaks are layout, not data."""
    [expected] = remittances(parse_all(MEDICARE))
    flat = MEDICARE.replace("\n", "")
    for width in (80, 132, 37):
        wrapped = "\r\n".join(flat[i : i + width] for i in range(0, len(flat), width)) + "\r\n"
        [parsed] = remittances(parse_all(wrapped))
        assert (parsed.claims, parsed.adjustments) == (expected.claims, expected.adjustments), width
        assert parsed.warnings == (), width
        assert parsed.remittance.remittance_id == expected.remittance.remittance_id


def test_padding_after_the_last_interchange_is_not_a_segment() -> None:
    """NUL bytes up to a block size, a DOS end-of-file mark and blanks after IEA are no stray segment."""
    for padding in ("\x00" * 300, "\x1a", "   \x1a\r\n", "\r\n\x00\x00~\x1a"):
        results = parse_all(MEDICARE + padding)
        assert errors(results) == [], repr(padding)
        [parsed] = remittances(results)
        assert parsed.warnings == ()
    [error] = errors(parse_all(MEDICARE + "\x00\x00XYZ*1~"))
    assert error.reason is FeedErrorReason.UNSUPPORTED and "<malformed>" in error.message


def test_another_transaction_set_is_named_in_its_error() -> None:
    """A claim file (837) or an acknowledgment (999) sent to the remittance inbox is said to be one."""
    for st01, shown in (("837", "837"), ("999", "999"), ("8X7", "<malformed>")):
        [error] = errors(parse_all(MEDICARE.replace("ST*835*", f"ST*{st01}*")))
        assert error.message.startswith(f"transaction set {shown} is not an 835"), error.message
        assert (error.segment_id, error.element) == ("ST", "ST01")


def test_a_later_interchange_ending_its_segments_with_line_breaks_still_reads() -> None:
    """Line breaks only between segments are no wrap, so they are kept: the second interchange of this file
    uses a line break as its terminator and must read as it always did."""
    second = (
        MEDICARE.replace("000000201", "000000202").replace("*201*", "*202*").replace("GE*1*201", "GE*1*202")
    )
    second = second.replace("~\n", "\n").replace("*:\n", "*:\n")
    results = remittances(parse_all(MEDICARE + second))
    assert [r.remittance.interchange_control_number for r in results] == ["000000201", "000000202"]


def test_a_control_number_that_does_not_match_is_quoted_whole() -> None:
    """A 10-character IEA02 once printed cut to 9 characters, the same as ISA13: the message said the two
    numbers differ while showing two equal ones. Each control number is now quoted as sent."""
    for old, new, message in (
        ("IEA*1*000000201", "IEA*1*0000002011", "IEA02 0000002011 does not match ISA13 000000201"),
        ("GE*1*201", "GE*1*2010000001", "GE02 2010000001 does not match GS06 201"),
        ("SE*40*0001", "SE*40*00010", "SE02 00010 does not match ST02 0001"),
        ("IEA*1*000000201", "IEA*1*", "IEA02 missing does not match ISA13 000000201"),
        (
            "IEA*1*000000201",
            "IEA*1*000000201 JOHN Q SAMPLE",
            "IEA02 <23 characters, not a control number or count> does not match ISA13 000000201",
        ),
    ):
        [error] = errors(parse_all(swap(MEDICARE, old, new)))
        assert error.reason is FeedErrorReason.ENVELOPE
        assert error.message == message
    [count] = errors(parse_all(swap(MEDICARE, "IEA*1*", "IEA*10000000001*")))
    assert count.message == "IEA01 says 10000000001 groups but the interchange has 1"
