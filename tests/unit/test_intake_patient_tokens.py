"""Intake's patient tokens events: what notification learns instead of reading every claim payment (issue #18).

One event per transaction, or per ``PATIENT_TOKENS_PER_EVENT`` claims of a larger one; the keyed digests of the
claims' patient control numbers and never the numbers; ids that a file fed twice maps onto again."""

import pytest
from x12_builder import Claim, Transaction, build_835, parse_all, remittances

from contracts.events import PatientTokensSeen
from contracts.topics import PATIENT_TOKENS
from services.intake import domain
from services.intake.feeds import ParsedRemittance
from shared import phi


def transaction(claims: int) -> ParsedRemittance:
    [parsed] = remittances(
        parse_all(build_835(Transaction(claims=[Claim(f"QX{n:03d}-ZK{n:03d}") for n in range(claims)])))
    )
    return parsed


def test_one_event_per_part_of_the_claims_with_their_digests_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(domain, "PATIENT_TOKENS_PER_EVENT", 25)
    parsed = transaction(62)
    events = domain.token_events("t1", parsed)
    assert [t for t, _ in events] == [PATIENT_TOKENS] * 3
    seen: list[PatientTokensSeen] = [env.payload for _, env in events]
    assert [(s.part, s.first_claim_ordinal, s.claim_count) for s in seen] == [
        (1, 1, 25),
        (2, 26, 25),
        (3, 51, 12),
    ]
    numbers = [c.patient_control_number for c in parsed.claims]
    assert {(t.length, t.digest, t.alphanumeric) for s in seen for t in s.tokens} == {
        (n, d, a) for _, n, d, a in phi.shaped_token_rows("id", numbers)
    }
    wire = b"".join(env.to_bytes() for _, env in events)
    assert not any(part.encode() in wire for n in numbers for part in (n, *n.split("-")))  # no hex in them
    assert [env.event_id for _, env in domain.token_events("t1", transaction(62))] == [
        env.event_id for _, env in events
    ]


def test_the_transaction_events_end_with_its_patient_tokens() -> None:
    parsed = transaction(3)
    topics = [t for t, _ in domain.remittance_events("t1", parsed)]
    assert topics[-1] is PATIENT_TOKENS and topics.count(PATIENT_TOKENS) == 1
