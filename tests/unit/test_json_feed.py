"""The ``json`` feed: exact contract values, strict validation by JSON path, no floats, no echoed values."""

import copy
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from feed_results import SECRET_PCN, TENANT, assert_phi_free, only_error, only_parsed, parse_with

from services.intake.csv_feed import CsvParser
from services.intake.domain import choose_parser
from services.intake.feeds import FeedError, FeedErrorReason, FeedParser, ParsedRemittance
from services.intake.json_feed import JsonParser, item_ordinal, json_path
from shared import plugins
from shared.ids import stable_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE = EXAMPLES / "json" / "sample.json"


def remittance(trace: str = "T1", total: str = "100.00", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payer_id": "PAYER1",
        "payer_name": "ACME HEALTH",
        "payee_id": "1234567893",
        "payee_name": "RIVERSIDE CLINIC",
        "trace_number": trace,
        "payment_date": "2024-05-01",
        "total_paid": total,
        "handling_code": "I",
        "payment_method": "ACH",
        "credit_debit": "C",
        "claims": [],
        "provider_adjustments": [],
    }
    return body | extra


def claim(pcn: str, charge: Any, paid: Any, *adjustments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient_control_number": pcn,
        "status_code": "1",
        "charge": charge,
        "paid": paid,
        "adjustments": list(adjustments),
    }
    return body | extra


def cas(amount: Any, group: str = "CO", reason: str = "45") -> dict[str, Any]:
    return {"group_code": group, "reason_code": reason, "amount": amount}


def plb(reason: str, amount: Any, reference: str | None = None) -> dict[str, Any]:
    return {
        "provider_identifier": "1234567893",
        "fiscal_period_date": "2024-12-31",
        "reason_code": reason,
        "reference": reference,
        "amount": amount,
    }


def document(*remittances: dict[str, Any]) -> bytes:
    return json.dumps(
        {"format": "offsetstream-remittance", "version": 1, "remittances": list(remittances)}
    ).encode()


def parse(content: bytes, file_name: str = "remit.json") -> list[ParsedRemittance | FeedError]:
    return parse_with(JsonParser(), content, file_name, "cd" * 32)


# --- valid documents --------------------------------------------------------------------------------------------


def test_the_documented_example_parses_into_exact_contract_values() -> None:
    parsed = only_parsed(parse(SAMPLE.read_bytes(), "sample.json"))
    rem = parsed.remittance
    rid = stable_id("remittance", TENANT, "01112", "EFT20240315001", None, None, "EFT20240315001")
    assert rem.remittance_id == rid
    assert (rem.feed, rem.file_name, rem.transaction_control_number, rem.transaction_index) == (
        "json",
        "sample.json",
        "EFT20240315001",
        1,
    )
    assert (rem.total_paid, rem.total_claim_paid, rem.total_provider_adjustments) == (
        Decimal("200.00"),
        Decimal("100.00"),
        Decimal("-100.00"),
    )
    assert (rem.payment_date, rem.production_date) == (date(2024, 3, 15), date(2024, 3, 13))
    assert (rem.claim_count, rem.adjustment_count) == (3, 1)
    # Item ordinals: remittance 1, claim 2 (+1 adjustment), claim 4 (+1), claim 6 (+2), provider adjustment 9.
    assert [c.segment_ordinal for c in parsed.claims] == [2, 4, 6]
    assert [c.claim_ordinal for c in parsed.claims] == [1, 2, 3]
    reversal, correction, other = parsed.claims
    assert (reversal.status_code, reversal.charge, reversal.paid) == (
        "22",
        Decimal("-500.00"),
        Decimal("-400.00"),
    )
    assert correction.original_reference == "22024075123450"
    assert [(a.group_code, a.reason_code, a.amount) for a in other.adjustments] == [
        ("CO", "45", Decimal("30.00")),
        ("PR", "2", Decimal("20.00")),
    ]
    (wo,) = parsed.adjustments
    assert (wo.segment_ordinal, wo.pair_index, wo.reason_code, wo.reference, wo.amount) == (
        9,
        1,
        "WO",
        "22024075123450",
        Decimal("-100.00"),
    )
    assert parsed.warnings == ()


def test_the_csv_and_json_examples_are_the_same_payment_and_yield_the_same_events() -> None:
    from_json = only_parsed(parse(SAMPLE.read_bytes()))
    from_csv = next(
        CsvParser().parse(
            (EXAMPLES / "csv" / "sample.csv").read_bytes(),
            file_name="remit.json",
            file_sha256="cd" * 32,
            tenant_id=TENANT,
        )
    )
    assert isinstance(from_csv, ParsedRemittance)
    assert from_csv.remittance.remittance_id == from_json.remittance.remittance_id
    assert from_csv.remittance.model_dump(exclude={"feed"}) == from_json.remittance.model_dump(
        exclude={"feed"}
    )
    strip = {"segment_ordinal"}
    assert [c.model_dump(exclude=strip) for c in from_csv.claims] == [
        c.model_dump(exclude=strip) for c in from_json.claims
    ]
    assert [a.model_dump(exclude=strip) for a in from_csv.adjustments] == [
        a.model_dump(exclude=strip) for a in from_json.adjustments
    ]


def test_several_remittances_and_a_debit_reversal_are_valid() -> None:
    content = document(
        remittance("T1", "90.00", claims=[claim("A1", "100.00", "90.00", cas("10.00"))]),
        remittance(
            "T2",
            "80.00",
            credit_debit="D",
            claims=[claim("A1", "-100.00", "-80.00", cas("-20.00"), status_code="22")],
        ),
    )
    one, two = parse(content)
    assert isinstance(one, ParsedRemittance) and isinstance(two, ParsedRemittance)
    assert [r.remittance.transaction_index for r in (one, two)] == [1, 2]
    assert two.claims[0].paid == Decimal("-80.00") and two.remittance.credit_debit == "D"


def test_a_claim_without_adjustments_is_warned_about_not_refused() -> None:
    parsed = only_parsed(parse(document(remittance("T1", "80.00", claims=[claim("A1", "100.00", "80.00")]))))
    assert "remittances[0].claims[0]" in parsed.warnings[0]


# --- errors -----------------------------------------------------------------------------------------------------


def test_an_unbalanced_remittance_names_its_json_path() -> None:
    good = remittance("T1", "0.00")
    bad = remittance("T2", "95.00", claims=[claim(SECRET_PCN, "100.00", "90.00", cas("10.00"))])
    first, second = parse(document(good, bad))
    assert isinstance(first, ParsedRemittance)
    assert isinstance(second, FeedError)
    assert second.reason is FeedErrorReason.UNBALANCED
    assert (second.element, second.segment_ordinal, second.segment_id) == (
        "remittances[1].total_paid",
        1,
        "remittance",
    )
    assert (second.transaction_control_number, second.transaction_index) == ("T2", 2)
    assert second.expected == "total_paid = Σpaid − Σprovider adjustments = 90.00"
    assert_phi_free(second)


def test_an_unbalanced_claim_names_the_claim_path_and_ordinal() -> None:
    rem = remittance(
        "T1",
        "95.00",
        claims=[claim("A0", "5.00", "5.00", cas("0.00")), claim(SECRET_PCN, "100.00", "90.00", cas("5.00"))],
    )
    error = only_error(parse(document(rem)))
    assert error.reason is FeedErrorReason.UNBALANCED
    assert (error.element, error.segment_ordinal) == ("remittances[0].claims[1].paid", 4)
    assert_phi_free(error)


def test_a_plb_reason_outside_the_41_codes_is_refused_with_its_path() -> None:
    rem = remittance(
        "T1", "10.00", claims=[claim("A1", "0.00", "0.00")], provider_adjustments=[plb("ZZ", "-10.00")]
    )
    error = only_error(parse(document(rem)))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert (error.element, error.segment_ordinal, error.segment_id) == (
        "remittances[0].provider_adjustments[0].reason_code",
        3,
        "provider_adjustment",
    )
    assert "41 valid PLB reason codes" in error.message


@pytest.mark.parametrize("number", [300.5, 300, 1e2])
def test_json_numbers_for_money_are_refused_because_floats_lose_cents(number: float) -> None:
    rem = remittance("T1", "300.00", claims=[claim(SECRET_PCN, "300.00", number)])
    error = only_error(parse(document(rem)))
    assert error.reason is FeedErrorReason.INVALID_ELEMENT
    assert error.element == "remittances[0].claims[0].paid"
    assert "JSON strings" in error.message and "lose cents" in error.message
    assert_phi_free(error, "300.5", "100.0")


def test_missing_and_unknown_keys_are_named_by_path_and_values_never_echoed() -> None:
    broken = claim(SECRET_PCN, "1.00", "1.00", patient_name="DOE, JANE", member_id="W123456789")
    del broken["status_code"]
    error = only_error(parse(document(remittance("T1", "1.00", claims=[broken]))))
    assert error.element == "remittances[0].claims[0].status_code"
    for path in ("claims[0].status_code: Field required", "claims[0].patient_name", "claims[0].member_id"):
        assert path in error.message
    assert_phi_free(error, "DOE", "JANE", "W123456789")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("paid", "12.345", "at most two decimals"),
        ("paid", "$1.00", "at most two decimals"),
        ("service_date_from", "20240101", "ISO date"),
        ("service_date_from", "2024-02-30", "ISO date"),
        ("status_code", 1, "valid string"),
        ("status_code", "77", "claim status code"),
    ],
)
def test_invalid_values_are_explained_without_the_value(field: str, value: Any, fragment: str) -> None:
    bad = claim(SECRET_PCN, "1.00", "1.00") | {field: value}
    error = only_error(parse(document(remittance("T1", "1.00", claims=[claim("A0", "0.00", "0.00"), bad]))))
    assert error.element == f"remittances[0].claims[1].{field}"
    assert error.segment_ordinal == 3
    assert fragment in error.message
    assert_phi_free(error, *([value] if isinstance(value, str) and len(value) > 2 else []))


def test_one_bad_remittance_does_not_hide_a_good_one() -> None:
    bad = remittance("BAD", "1.00", claims=[claim(SECRET_PCN, 1, "1.00")])
    good = remittance("GOOD", "0.00")
    first, second, third = parse(document(bad, good, {"not": "a remittance"}))
    assert isinstance(first, FeedError) and first.transaction_control_number == "BAD"
    assert isinstance(second, ParsedRemittance) and second.remittance.trace_number == "GOOD"
    assert second.remittance.transaction_index == 2
    assert isinstance(third, FeedError) and third.transaction_index == 3


@pytest.mark.parametrize(
    ("content", "reason", "fragment"),
    [
        (
            b'{"format": "other", "version": 1, "remittances": [{}]}',
            FeedErrorReason.INVALID_ELEMENT,
            "format",
        ),
        (
            b'{"format": "offsetstream-remittance", "version": true, "remittances": [{}]}',
            FeedErrorReason.INVALID_ELEMENT,
            "version",
        ),
        (
            b'{"format": "offsetstream-remittance", "version": 1, "remittances": []}',
            FeedErrorReason.INVALID_ELEMENT,
            "at least 1",
        ),
        (
            b'{"format": "offsetstream-remittance", "format": "x", "version": 1}',
            FeedErrorReason.SYNTAX,
            "twice",
        ),
        (b'{"format": "offsetstream-remittance", "version": 1, ', FeedErrorReason.SYNTAX, "line 1"),
        (b'{"format": "offsetstream-remittance\xff"}', FeedErrorReason.SYNTAX, "not UTF-8"),
    ],
)
def test_document_level_problems_are_one_error(
    content: bytes, reason: FeedErrorReason, fragment: str
) -> None:
    error = only_error(parse(content))
    assert error.reason is reason
    assert fragment in error.message


def test_json_paths_and_item_ordinals() -> None:
    assert json_path(("remittances", 0, "claims", 2, "paid")) == "remittances[0].claims[2].paid"
    assert json_path(("claims", 0, "DOE, JANE")) == "claims[0].<unrecognised>"
    raw = {"claims": [{"adjustments": [{}, {}]}, {"adjustments": []}], "provider_adjustments": [{}, {}]}
    assert item_ordinal(raw, ("total_paid",)) == 1
    assert item_ordinal(raw, ("claims", 0, "paid")) == 2
    assert item_ordinal(raw, ("claims", 0, "adjustments", 1, "amount")) == 4
    assert item_ordinal(raw, ("claims", 1, "paid")) == 5
    assert item_ordinal(raw, ("provider_adjustments", 1, "amount")) == 7


# --- discovery --------------------------------------------------------------------------------------------------


def test_sniff_and_choose_parser_pick_json_for_the_format_only() -> None:
    parser = JsonParser()
    assert isinstance(parser, FeedParser)
    assert parser.sniff(SAMPLE.read_bytes())
    assert parser.sniff(b'\xef\xbb\xbf  \n{"version": 1, "format": "offsetstream-remittance"}')
    assert not parser.sniff(b'{"format": "something-else"}')
    assert not parser.sniff(b'["offsetstream-remittance"]')
    installed = plugins.load_plugins(plugins.FEED_PARSERS)
    assert isinstance(choose_parser(installed, SAMPLE.read_bytes(), "sample.json", None), JsonParser)


def test_key_order_does_not_change_ids() -> None:
    data = json.loads(SAMPLE.read_bytes())
    reordered = copy.deepcopy(data)
    rem = reordered["remittances"][0]
    reordered["remittances"][0] = {"provider_adjustments": rem.pop("provider_adjustments"), **rem}
    assert parse(json.dumps(reordered).encode()) == parse(SAMPLE.read_bytes())


def test_the_docs_show_the_example_file_verbatim() -> None:
    docs = (EXAMPLES.parent / "docs" / "feeds.md").read_text()
    assert SAMPLE.read_text() in docs
