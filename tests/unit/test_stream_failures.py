"""One input never stalls a stage: which failures are retried, and dead letters that stay small.

Without a broker: the classification table, the size check before sending, the bodies that name where the
original is kept, the byte ranges of transactions, and the retention the dead-letter topics are created with.
"""

import json
from decimal import Decimal

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.exceptions import ProducerSendError
from pydantic import ValidationError
from x12_builder import Adj, Claim, Transaction, build_835, parse_all, remittances

from cli.dlt import DeadLetter
from contracts.events import RawFileReceived
from contracts.topics import CLAIM_PAYMENTS, INTAKE, OFFSETS, OVERPAYMENTS, REMITTANCES
from services.intake import domain
from services.intake.publish import raw_file_message
from shared.batches import _check_sizes, dead_letter_message, refused_record
from shared.dlt_refs import OmittedBody, RawFileRef, read_body
from shared.failures import TooLarge, is_transient, permanent_reason, record_size
from shared.kafka import MAX_MESSAGE_BYTES, topic_configs
from shared.messages import Incoming, Outgoing
from shared.settings import Settings


def _wrapped(exc: BaseException) -> ProducerSendError:
    """What Faust's producer raises for a Kafka error of a send."""
    try:
        raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    except ProducerSendError as wrapped:
        return wrapped


def _validation_error() -> ValidationError:
    try:
        RawFileReceived.model_validate({"file_name": 1})
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize"),
        asyncpg.exceptions.QueryCanceledError("statement timeout"),
        asyncpg.exceptions.LockNotAvailableError("lock timeout"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.PostgresConnectionError("connection lost"),
        ConnectionRefusedError("refused"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_database_and_network_trouble_is_transient(exc: BaseException) -> None:
    assert is_transient(exc) and permanent_reason(exc) is None


@pytest.mark.parametrize(
    "exc",
    [
        MessageSizeTooLargeError("the message is 17000000 bytes"),
        RecordListTooLargeError(),
        _wrapped(MessageSizeTooLargeError("too large")),  # as Faust hands it over
        TooLarge("output #2 would be a 17000000-byte message"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_message_too_large_for_the_broker_is_permanent_even_when_publishing(exc: BaseException) -> None:
    assert permanent_reason(exc) == "too_large"
    assert not is_transient(exc) and not is_transient(exc, broker=True)


def test_other_broker_errors_are_transient_only_for_messages_already_owed() -> None:
    timeout = _wrapped(KafkaTimeoutError())
    assert is_transient(timeout, broker=True)
    assert not is_transient(KafkaTimeoutError())  # while applying a batch a Kafka error is no database error


def test_invalid_input_and_bugs_are_not_retried() -> None:
    assert permanent_reason(_validation_error()) == "invalid_message"
    assert not is_transient(_validation_error())
    assert not is_transient(KeyError("bug")) and permanent_reason(KeyError("bug")) is None
    try:
        try:
            raise OSError("handled, then a bug")
        except OSError:
            raise ValueError("bug") from None
    except ValueError as bug:
        assert not is_transient(bug)  # a merely handled error is no cause


def test_an_output_over_the_cap_is_found_before_anything_is_sent() -> None:
    big = Outgoing(
        CLAIM_PAYMENTS.name, "k", b'{"event_type":"ClaimPaymentsReceived",' + b" " * MAX_MESSAGE_BYTES
    )
    with pytest.raises(TooLarge, match=r"output #2 \(ClaimPaymentsReceived for remit.claim-payments.v2\)"):
        _check_sizes([Outgoing(REMITTANCES.name, "k", b"{}"), big])
    _check_sizes([Outgoing(REMITTANCES.name, "k", b"x" * (MAX_MESSAGE_BYTES - 4096))])


def test_a_dead_letter_that_would_not_fit_names_its_source_position() -> None:
    value = b"\x00" * (MAX_MESSAGE_BYTES - 300)
    assert record_size(b"key", value, []) <= MAX_MESSAGE_BYTES  # the broker took the input
    incoming = Incoming(CLAIM_PAYMENTS.name, 2, 41, b"key", value)
    record = dead_letter_message("detection", incoming, "invalid_message", "not an envelope", {})
    assert record.size() <= MAX_MESSAGE_BYTES and len(record.value) < 1000
    body = read_body(record.value)
    assert isinstance(body, OmittedBody)
    assert (body.kept_at, body.size_bytes) == ("source_position", len(value))
    headers = dict(record.headers)
    assert (headers["source_partition"], headers["source_offset"]) == (b"2", b"41")
    small = dead_letter_message("detection", Incoming("t.v1", 0, 1, b"k", b"junk"), "x", "y", {})
    assert small.value == b"junk" and read_body(small.value) is None


def test_a_committed_event_the_broker_refuses_becomes_a_small_dead_letter_of_its_input() -> None:
    source = Incoming(OVERPAYMENTS.name, 1, 9, b"acct", b"{}")
    event = Outgoing(OFFSETS.name, "acct", b'{"event_type":"OffsetApplied"}' + b" " * 100)
    record = refused_record("matching", event, source)
    assert record.topic == "remit.overpayments.dlt"
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["reason"] == "too_large" and "OffsetApplied for remit.offsets.v1" in headers["error"]
    assert headers["source_offset"] == "9"
    body = read_body(record.value)
    assert isinstance(body, OmittedBody) and body.kept_at == "nowhere"
    dlt_record = Outgoing(INTAKE.dlt, "k", b"x" * 1000, (("reason", b"unbalanced"),))
    shortened = refused_record("intake", dlt_record, None)
    assert shortened.headers == dlt_record.headers and isinstance(read_body(shortened.value), OmittedBody)


def test_a_raw_file_reference_is_small_phi_free_and_reads_back() -> None:
    content = b"ISA*secret patient~" * 50_000
    _key, envelope = raw_file_message(content, "big.835", "t1", "cli")
    ref = RawFileRef("t1", "ab" * 32, "big.835", len(content), "cli", None, "e1", 7, (100, 200))
    record = dead_letter_message(
        "intake",
        Incoming(INTAKE.name, 0, 3, b"k", envelope),
        "unbalanced",
        "BPR02",
        {},
        body=ref.to_bytes(),
    )
    assert len(record.value) < 600 and b"secret" not in record.value
    assert read_body(record.value) == ref
    letter = DeadLetter(INTAKE.dlt, 0, 5, 0, b"k", record.value, {k: v.decode() for k, v in record.headers})
    assert letter.tenant_id == "t1"
    summary = letter.summary()
    assert summary["body"] == "raw_file_reference"
    assert summary["raw_file"]["byte_range"] == [100, 200]
    shown = letter.readable_body(b"x" * 100 + b"ST*835*0007~SE*2*0007~" + b"y" * 500)
    assert "transaction #7 at bytes 100-200" in shown and shown.endswith("ST*835*0007~SE*2*0007~" + "y" * 78)
    # A reference on another stage's DLT is not honoured (only intake writes them, on its own DLT).
    assert DeadLetter("remit.claim-payments.dlt", 0, 1, 0, None, record.value).reference is None
    assert read_body(json.dumps({"event_id": "x"}).encode()) is None


def test_transaction_byte_ranges_match_the_readers_numbering() -> None:
    txns = [
        Transaction(
            claims=[Claim(f"PCN{i}", charge_override=Decimal(10 + i))], trace=f"EFT{i}", st02=f"000{i}"
        )
        for i in range(1, 4)
    ]
    content = build_835(*txns).encode()
    spans = domain.transaction_spans(content)
    assert sorted(spans) == [1, 2, 3]
    for index, (start, end) in spans.items():
        text = content[start:end]
        assert text.startswith(f"ST*835*000{index}*".encode())
        assert text.endswith(f"SE*{text.count(b'~')}*000{index}~".encode())
    assert [r.remittance.transaction_index for r in remittances(parse_all(content))] == [1, 2, 3]
    assert domain.transaction_spans(b"PCN,amount\n1,2\n") == {}


def test_a_claim_too_large_for_a_message_is_refused_with_where_it_is() -> None:
    from services.intake.engine import _File, _too_large

    huge = Claim(
        "PCNHUGE", adjustments=[Adj("CO", "45", Decimal("0.01"))] * 200_000, charge_override=Decimal(2010)
    )
    content = build_835(Transaction(claims=[Claim("PCNOK", charge_override=Decimal(5)), huge])).encode()
    [parsed] = remittances(parse_all(content, "huge.835"))
    events = [Outgoing.event(topic, env) for topic, env in domain.remittance_events("t1", parsed)]
    raw = RawFileReceived(file_name="huge.835", content=content, sha256="0" * 64, source="cli")
    refused = _too_large(_File(raw, "t1", "e1", None, []), parsed, events)  # type: ignore[arg-type]
    assert refused is not None and refused.reason.value == "too_large"
    assert refused.location() == {
        "file": "huge.835",
        "isa13": "000000101",
        "st02": "0001",
        "transaction_index": "1",
        "segment_ordinal": str(parsed.claims[1].segment_ordinal),
        "segment_id": "CLP",
        "claim_ordinal": "2",
    }
    assert "claim #2 (200000 adjustments, 0 service lines) makes its part of the claims a" in str(refused)
    assert "PCNHUGE" not in str(refused)
    # the heavy claim travels in a part of its own (domain.claim_parts), so the claim before it still fits
    assert [e.topic for e in events[1:3]] == [CLAIM_PAYMENTS.name] * 2
    assert _too_large(_File(raw, "t1", "e1", None, []), parsed, events[:2]) is None  # type: ignore[arg-type]


def test_dead_letter_topics_are_created_with_a_retention() -> None:
    days30 = str(30 * 24 * 3600 * 1000)
    assert topic_configs("remit.intake.dlt", Settings()) == {
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
        "retention.ms": days30,
    }
    assert "retention.ms" not in topic_configs("remit.intake.v1", Settings())
    assert topic_configs("remit.alerts.dlt", Settings(dlt_retention_days=-1))["retention.ms"] == "-1"
    assert topic_configs("remit.alerts.dlt", Settings(dlt_retention_days=0.5))["retention.ms"] == "43200000"
