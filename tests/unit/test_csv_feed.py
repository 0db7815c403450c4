"""The ``csv`` feed: exact contract values, balancing, precise PHI-free errors, isolation of bad remittances."""

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from feed_results import SECRET_PCN, TENANT, assert_phi_free, only_error, only_parsed, parse_with

from services.intake.csv_feed import HEADER_REQUIRED, OPTIONAL, RECORD_TYPES, CsvParser
from services.intake.domain import choose_parser
from services.intake.feeds import FeedError, FeedErrorReason, FeedParser, ParsedRemittance
from shared import plugins
from shared.ids import stable_id

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csv" / "sample.csv"
COLUMNS = [*HEADER_REQUIRED, *(c for r in RECORD_TYPES for c in OPTIONAL[r])]


def remittance(trace: str = "T1", total: str = "100.00", **extra: str) -> dict[str, str]:
    row = {
        "record": "remittance",
        "trace_number": trace,
        "payer_id": "PAYER1",
        "payer_name": "ACME HEALTH",
        "payee_id": "1234567893",
        "payee_name": "RIVERSIDE CLINIC",
        "payment_date": "2024-05-01",
        "total_paid": total,
        "handling_code": "I",
        "payment_method": "ACH",
        "credit_debit": "C",
    }
    return row | extra


def claim(
    pcn: str, charge: str, paid: str, trace: str = "T1", status: str = "1", **extra: str
) -> dict[str, str]:
    row = {
        "record": "claim",
        "trace_number": trace,
        "patient_control_number": pcn,
        "status_code": status,
        "charge": charge,
        "paid": paid,
    }
    return row | extra


def adjustment(
    pcn: str, amount: str, trace: str = "T1", group: str = "CO", reason: str = "45", **extra: str
) -> dict[str, str]:
    row = {
        "record": "adjustment",
        "trace_number": trace,
        "patient_control_number": pcn,
        "group_code": group,
        "reason_code": reason,
        "amount": amount,
    }
    return row | extra


def plb(reason: str, amount: str, trace: str = "T1", reference: str = "", **extra: str) -> dict[str, str]:
    row = {
        "record": "plb",
        "trace_number": trace,
        "provider_identifier": "1234567893",
        "fiscal_period_date": "2024-12-31",
        "reason_code": reason,
        "reference": reference,
        "amount": amount,
    }
    return row | extra


def to_csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def parse(content: bytes, file_name: str = "remit.csv") -> list[ParsedRemittance | FeedError]:
    return parse_with(CsvParser(), content, file_name, "ab" * 32)


# --- valid files ------------------------------------------------------------------------------------------------


def test_the_documented_example_parses_into_exact_contract_values() -> None:
    parsed = only_parsed(parse(SAMPLE.read_bytes(), "sample.csv"))
    rem = parsed.remittance
    rid = stable_id("remittance", TENANT, "01112", "EFT20240315001", None, None, "EFT20240315001")
    assert rem.remittance_id == rid
    assert (rem.feed, rem.file_name, rem.file_sha256) == ("csv", "sample.csv", "ab" * 32)
    assert (rem.interchange_control_number, rem.group_control_number) == (None, None)
    assert (rem.transaction_control_number, rem.transaction_index) == ("EFT20240315001", 1)
    assert (rem.payer_id, rem.payer_name, rem.payee_id, rem.payee_name) == (
        "01112",
        "MEDICARE PART B",
        "1234567893",
        "RIVERSIDE CLINIC",
    )
    assert (rem.handling_code, rem.credit_debit, rem.payment_method) == ("I", "C", "ACH")
    assert (rem.payment_date, rem.production_date) == (date(2024, 3, 15), date(2024, 3, 13))
    assert rem.total_paid == Decimal("200.00")
    assert (rem.claim_count, rem.adjustment_count) == (3, 1)
    assert (rem.total_claim_paid, rem.total_provider_adjustments) == (Decimal("100.00"), Decimal("-100.00"))

    reversal, correction, other = parsed.claims
    assert [c.claim_ordinal for c in parsed.claims] == [1, 2, 3]
    assert [c.segment_ordinal for c in parsed.claims] == [3, 5, 7]  # CSV line numbers (header = line 1)
    assert all(c.remittance_id == rid and c.trace_number == "EFT20240315001" for c in parsed.claims)
    assert (reversal.status_code, reversal.charge, reversal.paid) == (
        "22",
        Decimal("-500.00"),
        Decimal("-400.00"),
    )
    assert reversal.payer_claim_control_number == "22024075123450"
    assert [(a.level, a.group_code, a.reason_code, a.amount) for a in reversal.adjustments] == [
        ("claim", "CO", "45", Decimal("-100.00"))
    ]
    assert correction.original_reference == "22024075123450"
    assert (correction.service_date_from, correction.service_date_to) == (
        date(2024, 1, 10),
        date(2024, 1, 10),
    )
    assert (correction.claim_filing_indicator, correction.service_line_count) == ("MB", 0)
    assert other.patient_responsibility == Decimal("20.00")
    assert [a.amount for a in other.adjustments] == [Decimal("30.00"), Decimal("20.00")]

    (wo,) = parsed.adjustments
    assert (wo.segment_ordinal, wo.pair_index) == (10, 1)
    assert (wo.reason_code, wo.reference, wo.amount) == ("WO", "22024075123450", Decimal("-100.00"))
    assert (wo.provider_identifier, wo.fiscal_period_date) == ("1234567893", date(2024, 12, 31))
    assert parsed.warnings == ()


def test_the_same_file_always_yields_the_same_ids() -> None:
    first, second = parse(SAMPLE.read_bytes()), parse(SAMPLE.read_bytes())
    assert first == second


def test_several_remittances_in_one_file_with_interleaved_rows() -> None:
    rows = [
        remittance("T1", "90.00"),
        remittance("T2", "50.00", payer_id="PAYER2"),
        claim("A1", "100.00", "90.00", trace="T1"),
        claim("B1", "50.00", "50.00", trace="T2"),
        adjustment("A1", "10.00", trace="T1"),
    ]
    one, two = parse(to_csv(rows))
    assert isinstance(one, ParsedRemittance) and isinstance(two, ParsedRemittance)
    assert (one.remittance.trace_number, one.remittance.transaction_index) == ("T1", 1)
    assert (two.remittance.trace_number, two.remittance.transaction_index, two.remittance.payer_id) == (
        "T2",
        2,
        "PAYER2",
    )
    assert [c.segment_ordinal for c in one.claims] == [4]
    assert one.claims[0].adjustments[0].amount == Decimal("10.00")
    assert one.remittance.remittance_id != two.remittance.remittance_id


def test_a_reversal_with_negative_amounts_and_a_debit_remittance_are_valid() -> None:
    rows = [
        remittance("T9", "80.00", credit_debit="D"),
        claim("A1", "-100.00", "-80.00", trace="T9", status="22"),
        adjustment("A1", "-20.00", trace="T9"),
    ]
    parsed = only_parsed(parse(to_csv(rows)))
    assert parsed.claims[0].status_code == "22"
    assert parsed.claims[0].paid == Decimal("-80.00")
    assert parsed.remittance.credit_debit == "D"


def test_adjustments_attach_to_the_nearest_claim_above_or_to_the_named_claim_ordinal() -> None:
    rows = [
        remittance("T1", "30.00"),
        claim("A1", "-100.00", "-80.00", status="22"),
        claim("A1", "100.00", "110.00"),
        adjustment("A1", "-10.00"),  # nearest claim above with A1: the correction
        adjustment("A1", "-20.00", claim_ordinal="1"),  # the reversal, named explicitly
    ]
    parsed = only_parsed(parse(to_csv(rows)))
    assert [a.amount for a in parsed.claims[0].adjustments] == [Decimal("-20.00")]
    assert [a.amount for a in parsed.claims[1].adjustments] == [Decimal("-10.00")]


def test_a_claim_without_adjustments_is_not_balanced_but_warned_about() -> None:
    parsed = only_parsed(parse(to_csv([remittance("T1", "80.00"), claim("A1", "100.00", "80.00")])))
    assert parsed.claims[0].adjustments == ()
    assert len(parsed.warnings) == 1 and "line 3" in parsed.warnings[0]


def test_amounts_are_decimal_text_and_extra_zero_decimals_are_accepted() -> None:
    rows = [remittance("T1", "12.5"), claim("A1", "12.500", "12.50")]
    parsed = only_parsed(parse(to_csv(rows)))
    assert parsed.remittance.total_paid == Decimal("12.50")
    assert str(parsed.claims[0].charge) == "12.50"


def test_optional_columns_may_be_left_out_of_the_header_and_a_bom_is_accepted() -> None:
    columns = list(HEADER_REQUIRED)
    content = b"\xef\xbb\xbf" + to_csv([remittance("T1", "5.00"), claim("A1", "5.00", "5.00")], columns)
    parsed = only_parsed(parse(content))
    assert parsed.claims[0].payer_claim_control_number is None


# --- errors -----------------------------------------------------------------------------------------------------


def test_an_unbalanced_remittance_names_its_line_and_column() -> None:
    rows = [
        remittance("T1", "95.00"),
        claim(SECRET_PCN, "100.00", "90.00"),
        plb("WO", "-10.00", reference="F1"),
    ]
    error = only_error(parse(to_csv(rows)))
    assert error.reason is FeedErrorReason.UNBALANCED
    assert (error.segment_ordinal, error.segment_id, error.element) == (2, "remittance", "total_paid")
    assert (error.transaction_control_number, error.transaction_index) == ("T1", 1)
    assert "line 2" in error.message and "100.00" in error.message
    assert error.expected == "total_paid = Σpaid − Σprovider adjustments = 100.00"
    assert_phi_free(error)


def test_an_unbalanced_claim_names_the_claim_line_and_paid_column() -> None:
    rows = [remittance("T1", "90.00"), claim(SECRET_PCN, "100.00", "90.00"), adjustment(SECRET_PCN, "5.00")]
    error = only_error(parse(to_csv(rows)))
    assert error.reason is FeedErrorReason.UNBALANCED
    assert (error.segment_ordinal, error.segment_id, error.element) == (3, "claim", "paid")
    assert "claim 1 (line 3)" in error.message
    assert_phi_free(error)


def test_a_plb_reason_outside_the_41_codes_is_refused() -> None:
    rows = [remittance("T1", "10.00"), plb("ZZ", "-10.00")]
    error = only_error(parse(to_csv(rows)))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert (error.segment_ordinal, error.segment_id, error.element) == (3, "plb", "reason_code")
    assert "41 valid PLB reason codes" in error.message


def test_a_missing_required_column_is_one_file_level_error() -> None:
    columns = [c for c in COLUMNS if c != "paid"]
    rows = [remittance("T1", "0.00")]
    error = only_error(parse(to_csv(rows, columns)))
    assert error.reason is FeedErrorReason.MISSING_SEGMENT
    assert (error.segment_ordinal, error.element) == (1, "paid")
    assert "paid" in error.message


def test_unknown_columns_such_as_a_patient_name_are_refused_without_echoing_values() -> None:
    columns = [*COLUMNS, "patient_name"]
    rows = [remittance("T1", "0.00", patient_name="DOE, JANE")]
    error = only_error(parse(to_csv(rows, columns)))
    assert error.element == "patient_name"
    assert_phi_free(error, "DOE", "JANE")


def test_a_file_without_a_header_does_not_quote_its_first_line() -> None:
    content = b"remittance,T1,DOE JANE,123\n"
    error = only_error(parse(content))
    assert error.reason is FeedErrorReason.MISSING_SEGMENT
    assert_phi_free(error, "DOE", "JANE")


@pytest.mark.parametrize(
    ("value", "column"),
    [("12.345", "charge"), ("1,000.00", "charge"), ("$5.00", "charge"), ("", "paid"), ("1e3", "charge")],
)
def test_malformed_amounts_name_the_column_and_never_echo_the_value(value: str, column: str) -> None:
    row = claim(SECRET_PCN, "10.00", "10.00") | {column: value}
    error = only_error(parse(to_csv([remittance("T1", "10.00"), row])))
    assert (error.reason, error.segment_ordinal, error.element) == (
        FeedErrorReason.INVALID_ELEMENT,
        3,
        column,
    )
    assert error.expected is not None and "decimal amount" in error.expected
    assert_phi_free(error, *(v for v in [value] if v))


@pytest.mark.parametrize(
    ("row", "element", "fragment"),
    [
        (claim(SECRET_PCN, "10.00", "10.00", status="77"), "status_code", "'77' is not valid"),
        (claim(SECRET_PCN, "10.00", "10.00", service_date_from="2024-13-01"), "service_date_from", "date"),
        (claim(SECRET_PCN, "10.00", "10.00", service_date_from="20240101"), "service_date_from", "date"),
        (claim(SECRET_PCN, "10.00", "10.00", total_paid="10.00"), "total_paid", "must be empty"),
        (adjustment("OTHER-PCN", "1.00"), "patient_control_number", "matches no claim row above"),
        (adjustment(SECRET_PCN, "1.00", group="CR"), "group_code", "'CR' is not valid"),
        (claim(SECRET_PCN, "10.00", "10.00", record="clam"), "record", "not a known record type"),
    ],
)
def test_row_errors_name_line_column_and_expectation(
    row: dict[str, str], element: str, fragment: str
) -> None:
    rows = [remittance("T1", "10.00"), claim(SECRET_PCN, "10.00", "10.00"), row]
    error = only_error(parse(to_csv(rows)))
    assert (error.segment_ordinal, error.element) == (4, element)
    assert fragment in error.message and "line 4" in error.message
    assert error.expected
    assert_phi_free(error, "OTHER-PCN")


def test_one_bad_remittance_does_not_hide_a_good_one() -> None:
    rows = [
        remittance("BAD", "99.00"),
        claim(SECRET_PCN, "10.00", "10.00", trace="BAD"),
        remittance("GOOD", "10.00"),
        claim("A2", "10.00", "10.00", trace="GOOD"),
        claim("A3", "10.00", "oops", trace="BAD2"),  # no remittance row has BAD2
    ]
    bad, good, orphan = parse(to_csv(rows))
    assert isinstance(bad, FeedError) and bad.transaction_control_number == "BAD"
    assert bad.reason is FeedErrorReason.UNBALANCED
    assert isinstance(good, ParsedRemittance) and good.remittance.trace_number == "GOOD"
    assert good.remittance.transaction_index == 2
    assert isinstance(orphan, FeedError) and orphan.reason is FeedErrorReason.MISSING_SEGMENT
    assert (orphan.segment_ordinal, orphan.element) == (6, "trace_number")


def test_a_row_above_its_remittance_row_and_a_repeated_trace_number_are_errors() -> None:
    early = parse(to_csv([claim("A1", "1.00", "1.00"), remittance("T1", "1.00")]))
    assert isinstance(early[0], FeedError) and "comes before its remittance row" in early[0].message
    twice = parse(to_csv([remittance("T1", "0.00"), remittance("T1", "0.00")]))
    error = only_error(twice)
    assert (error.segment_ordinal, error.element) == (3, "trace_number")


def test_broken_csv_syntax_is_a_file_level_error_with_its_line() -> None:
    content = to_csv([remittance("T1", "0.00")]) + b'claim,"T1\n'
    error = only_error(parse(content))
    assert error.reason is FeedErrorReason.SYNTAX
    assert error.segment_ordinal == 3


def test_a_row_wider_than_the_header_is_refused() -> None:
    content = to_csv([remittance("T1", "0.00")]) + b"claim,T1" + b",x" * len(COLUMNS) + b"\n"
    error = only_error(parse(content))
    assert error.reason is FeedErrorReason.SYNTAX and error.segment_ordinal == 3


# --- discovery --------------------------------------------------------------------------------------------------


def test_sniff_and_choose_parser_pick_csv_only_for_csv_files() -> None:
    parser = CsvParser()
    assert isinstance(parser, FeedParser)
    assert parser.sniff(SAMPLE.read_bytes()[:4096])
    assert parser.sniff(b'\xef\xbb\xbf\n"record","trace_number","payer_id"\n')
    assert not parser.sniff(b"ISA*00*          *00*          *ZZ*SENDER~")
    assert not parser.sniff(b'{"format": "offsetstream-remittance"}')
    installed = plugins.load_plugins(plugins.FEED_PARSERS)
    chosen = choose_parser(installed, SAMPLE.read_bytes(), "sample.csv", None)
    assert isinstance(chosen, CsvParser)


def test_the_docs_show_the_example_file_verbatim() -> None:
    docs = (SAMPLE.parents[2] / "docs" / "feeds.md").read_text()
    assert SAMPLE.read_text() in docs
