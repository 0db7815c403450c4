"""Notification's learning agent reads two topics with one idempotency table: the same bytes on both are two
inputs (the poison test of ``test_faults`` sends identical bad records to every topic; taking the second for a
duplicate of the first skipped a patient tokens record only notification reads, so it was never dead-lettered)."""

from contracts.topics import OVERPAYMENTS, PATIENT_TOKENS
from services.notification.learn import learn_id
from shared.messages import Incoming


def test_the_same_bytes_on_two_topics_are_two_inputs() -> None:
    for value in (b"\x00not json", b'{"event_id": "x", "payload": 1}'):
        ids = {learn_id(Incoming(topic.name, 0, 7, b"k", value)) for topic in (OVERPAYMENTS, PATIENT_TOKENS)}
        assert len(ids) == 2


def test_a_record_keeps_its_id_wherever_it_is_read_from_its_topic() -> None:
    value = b'{"event_id": "5f0c6a56-6b1e-5d3e-9a55-0d7f0b2a1c11", "payload": {}}'
    first = learn_id(Incoming(PATIENT_TOKENS.name, 0, 1, b"k", value))
    again = learn_id(Incoming(PATIENT_TOKENS.name, 2, 9, b"k", value))  # redelivered elsewhere: same id
    assert first == again and "5f0c6a56" in first
