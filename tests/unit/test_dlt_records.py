"""DLT records without a broker: header parsing, selection, replay targets, readable bodies."""

import json

import pytest

from cli.dlt import DeadLetter, check_dlt_topic, dlt_topics, parse_position, replay_target, select
from contracts.topics import CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, INTAKE
from services.intake.publish import raw_file_message
from shared.batches import dead_letter_message
from shared.messages import Incoming


def _from_stage(
    value: bytes, topic: str = INTAKE.name, reason: str = "unbalanced", offset: int = 7
) -> DeadLetter:
    """A DeadLetter exactly as the stage runtime writes it."""
    out = dead_letter_message(
        "intake",
        Incoming(topic=topic, partition=1, offset=offset, key=b"k1", value=value),
        reason,
        "BPR02 300.00 does not equal the claims minus PLB (301.00)" * 3,
        {"transaction": "1", "segment": "BPR"},
    )
    return DeadLetter(
        topic=out.topic,
        partition=2,
        offset=offset,
        timestamp_ms=1_700_000_000_000,
        key=out.key.encode(),
        value=out.value,
        headers={k: v.decode() for k, v in out.headers},
    )


def test_a_dead_letter_row_has_headers_and_size_but_never_the_body() -> None:
    _key, value = raw_file_message(b"ISA*secret patient~", "a.835", "t1", "cli")
    record = _from_stage(value)
    row = record.summary()
    assert row["position"] == "2:7"
    assert row["reason"] == "unbalanced"
    assert row["source_topic"] == "remit.intake.v1"
    assert (row["source_partition"], row["source_offset"]) == ("1", "7")
    assert row["location"] == {"segment": "BPR", "transaction": "1"}
    assert row["tenant_id"] == "t1"
    assert row["size_bytes"] == len(value)
    assert len(row["error"]) == 80 and row["error"].endswith("…")
    assert "secret" not in json.dumps(row)
    assert len(record.summary(error_width=None)["error"]) > 80


def test_readable_body_unwraps_the_payer_file_of_an_intake_envelope() -> None:
    _key, value = raw_file_message(b"ISA*00~ST*835*0001~", "a.835", "t1", "cli")
    body = _from_stage(value).readable_body()
    assert "payer file 'a.835'" in body
    assert body.endswith("ISA*00~ST*835*0001~")


def test_readable_body_falls_back_to_text_or_hex() -> None:
    assert _from_stage(b"not json").readable_body() == "not json"
    assert _from_stage(b"\xff\x00").readable_body() == "ff 00"
    assert _from_stage(b"\xff").tenant_id is None


def test_replay_goes_only_back_to_a_topic_feeding_that_dlt() -> None:
    assert replay_target(_from_stage(b"x")) == "remit.intake.v1"
    forged = _from_stage(b"x", topic=CLAIM_PAYMENTS.name)
    assert replay_target(forged) == "remit.claim-payments.v2"
    # both majors of claim payments share remit.claim-payments.dlt: each record goes back to its own source
    old = _from_stage(b"x", topic=CLAIM_PAYMENTS_V1.name)
    assert old.topic == forged.topic == "remit.claim-payments.dlt"
    assert replay_target(old) == "remit.claim-payments.v1"
    wrong = DeadLetter(**{**forged.__dict__, "topic": INTAKE.dlt})
    assert replay_target(wrong) is None  # a claim-payments source on the intake DLT: refuse
    assert replay_target(DeadLetter("remit.intake.dlt", 0, 0, 0, None, b"", {})) is None


def test_select_filters_by_reason_and_tenant() -> None:
    _key, value = raw_file_message(b"ISA~", "a.835", "t1", "cli")
    records = [_from_stage(value), _from_stage(b"junk", reason="invalid_message", offset=8)]
    assert [r.offset for r in select(records, reason="unbalanced")] == [7]
    assert [r.offset for r in select(records, tenant_id="t1")] == [7]
    assert [r.offset for r in select(records)] == [7, 8]


def test_positions_and_topics_are_validated() -> None:
    assert parse_position(" 2:15 ") == (2, 15)
    for bad in ("2", "a:b", "-1:3", "1:2:3"):
        with pytest.raises(ValueError, match="PARTITION:OFFSET"):
            parse_position(bad)
    assert "remit.intake.dlt" in dlt_topics() and "remit.claim-payments.dlt" in dlt_topics()
    assert all(t.endswith(".dlt") for t in dlt_topics())
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        check_dlt_topic(INTAKE.name)


def test_a_file_replay_request_is_one_per_form_and_carries_no_payer_data() -> None:
    from contracts.topics import FILE_REPLAYS
    from services.intake.publish import file_replay_message

    sha = "ab" * 32
    key, value = file_replay_message("t1", sha, "ann", "form-1")
    again = FILE_REPLAYS.parse(file_replay_message("t1", sha, "ann", "form-1")[1])
    other = FILE_REPLAYS.parse(file_replay_message("t1", sha, "ann", "form-2")[1])
    request = FILE_REPLAYS.parse(value)
    assert request.event_id == again.event_id == request.payload.request_id != other.event_id
    assert (request.tenant_id, request.payload.sha256, request.payload.entered_by) == ("t1", sha, "ann")
    assert key.decode() == request.account_key
    assert set(json.loads(value)["payload"]) == {"request_id", "sha256", "entered_by"}
    # A replayed request's record stays on the requests' DLT and goes back to their topic.
    record = _from_stage(value, topic=FILE_REPLAYS.name, reason="unknown_file")
    assert record.topic == FILE_REPLAYS.dlt and replay_target(record) == FILE_REPLAYS.name
