"""``envelope_event_id``: the idempotency id of an envelope, read from the first bytes when the message is laid
out as every envelope is written, parsed whole otherwise, refused when there is none."""

import json

import pytest

from contracts.envelope import Envelope
from contracts.events import AlertRaised
from shared.messages import Incoming, Rejected, envelope_event_id

ID = "0b6c3d1e-2f4a-5b6c-8d7e-9f0a1b2c3d4e"


def incoming(value: bytes) -> Incoming:
    return Incoming("remit.offsets.v1", 0, 0, b"k", value)


def test_an_envelope_as_written_is_read_from_its_first_bytes_without_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = json.dumps(
        {"event_id": ID, "event_type": "X", "payload": {"a": 1}}, separators=(",", ":")
    ).encode()
    assert value.startswith(b'{"event_id":"')

    def no_parse(_: bytes) -> object:
        raise AssertionError("parsed the whole message for its id")

    monkeypatch.setattr(json, "loads", no_parse)
    assert envelope_event_id(incoming(value)) == ID


def test_the_id_read_from_the_first_bytes_is_the_one_the_envelope_carries() -> None:
    env = Envelope[AlertRaised].model_validate_json(
        json.dumps(
            {
                "event_id": ID,
                "event_type": "AlertRaised",
                "occurred_at": "2026-12-06T10:00:00+00:00",
                "tenant_id": "t",
                "account_key": "k",
                "causation_id": "c",
                "payload": {
                    "alert_id": ID,
                    "kind": "forwarding_balance_not_closed",
                    "payer_id": "p",
                    "reference": "r",
                    "amount": "1.00",
                    "observed_on": "2026-12-06",
                    "detail": "d",
                },
            }
        )
    )
    assert envelope_event_id(incoming(env.to_bytes())) == str(env.event_id) == ID


@pytest.mark.parametrize(
    "value",
    [
        json.dumps({"event_id": ID, "x": 1}).encode(),  # spaces after the colon
        json.dumps({"x": 1, "event_id": ID}).encode(),  # the id not first
        b'{"event_id":"not-a-uuid","x":1}',  # a shorter id: parsed whole, kept as it is
    ],
)
def test_any_other_layout_is_parsed_whole(value: bytes) -> None:
    assert envelope_event_id(incoming(value)) == json.loads(value)["event_id"]


@pytest.mark.parametrize(
    "value", [b"not json", b'{"x":1}', b'{"event_id":7}', b'{"event_id":"' + ID.encode() + b'"']
)
def test_a_message_without_an_event_id_is_refused(value: bytes) -> None:
    with pytest.raises(Rejected):
        envelope_event_id(incoming(value))
