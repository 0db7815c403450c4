"""Parser output honours the event contracts, including the per-claim payloads built without re-validation."""

from test_x12_parser import MEDICARE
from x12_builder import parse_all, remittances

from contracts.events import ClaimPaymentReceived, ProviderAdjustmentReceived, RemittanceReceived


def test_every_payload_survives_strict_revalidation_and_a_json_round_trip() -> None:
    [parsed] = remittances(parse_all(MEDICARE))
    payloads = [parsed.remittance, *parsed.claims, *parsed.adjustments]
    for payload in payloads:
        model = type(payload)
        assert model in (RemittanceReceived, ClaimPaymentReceived, ProviderAdjustmentReceived)
        assert model.model_validate(payload.model_dump()) == payload
        assert model.model_validate_json(payload.model_dump_json()) == payload
        assert payload.model_fields_set == set(model.model_fields)


def test_claim_payloads_are_frozen_and_print_money_with_cents() -> None:
    [parsed] = remittances(parse_all(MEDICARE))
    claim = parsed.claims[0]
    assert claim.model_dump(mode="json")["paid"] == "128.00"
    try:
        claim.paid = claim.charge  # type: ignore[misc]
    except Exception as exc:  # pydantic's frozen-instance ValidationError
        assert "frozen" in str(exc)
    else:
        raise AssertionError("claim payload is not frozen")
