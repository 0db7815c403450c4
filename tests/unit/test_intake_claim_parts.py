"""Intake's claim payments on ``remit.claim-payments.v2``: a transaction's claims in parts of at most
``CLAIMS_PER_EVENT`` claims and ``CLAIM_LINES_PER_EVENT`` lines (issue #18), ids from the remittance and the
part that a file read again maps onto again, and each claim exactly the v1 event once unbundled."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from x12_builder import Adj, Claim, Service, Transaction, build_835, parse_all, remittances

from contracts.envelope import Envelope
from contracts.events import (
    CLAIM_LINES_PER_EVENT,
    CLAIMS_PER_EVENT,
    ClaimPaymentReceived,
    ClaimPaymentsReceived,
)
from contracts.topics import CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1
from services.intake import domain
from services.intake.feeds import ParsedRemittance
from shared import claims
from shared.bundles import unbundled
from shared.ids import stable_id
from shared.kafka import MAX_MESSAGE_BYTES
from shared.messages import FailedInput, Outgoing, Rejected


def transaction(count: int, *, lines: int = 1) -> ParsedRemittance:
    """One transaction of ``count`` claims of ``lines`` service lines each."""
    made = [Claim(f"PCN{n:05d}", [Service(Decimal("10.00"))] * lines) for n in range(count)]
    [parsed] = remittances(parse_all(build_835(Transaction(claims=made))))
    return parsed


def parts_of(parsed: ParsedRemittance) -> list[ClaimPaymentsReceived]:
    events = domain.claim_events("t1", parsed)
    assert {topic for topic, _ in events} == {CLAIM_PAYMENTS}
    return [env.payload for _, env in events]


def test_a_transaction_of_more_claims_than_a_part_holds_is_cut_in_order() -> None:
    count = 2 * CLAIMS_PER_EVENT + 17
    parsed = transaction(count)
    parts = parts_of(parsed)
    assert [(p.part, p.first_claim_ordinal, p.claim_count) for p in parts] == [
        (1, 1, CLAIMS_PER_EVENT),
        (2, CLAIMS_PER_EVENT + 1, CLAIMS_PER_EVENT),
        (3, 2 * CLAIMS_PER_EVENT + 1, 17),
    ]
    assert [c for p in parts for c in p.claims] == list(parsed.claims)  # every claim once, in document order


def test_an_ordinary_transaction_is_one_event_and_ids_come_from_remittance_and_part() -> None:
    parsed = transaction(12)
    [(topic, env)] = domain.claim_events("t1", parsed)
    rid = parsed.remittance.remittance_id
    assert topic is CLAIM_PAYMENTS and env.payload.claim_count == 12
    assert env.event_id == stable_id(rid, "claims", 1) == claims.claims_event_id(rid, 1)
    assert env.causation_id == f"remittance:{rid}#claims1"
    assert env.account_key == domain.account_of("t1", parsed)
    again = domain.claim_events("t1", transaction(12))  # the same file read again (a replay)
    assert [e.to_bytes() for _, e in again] != [] and again[0][1].event_id == env.event_id
    assert again[0][1].payload == env.payload


def test_claims_heavy_with_lines_travel_in_smaller_parts_below_the_cap() -> None:
    parsed = transaction(10, lines=CLAIM_LINES_PER_EVENT // 4)  # four such claims fill a part's lines
    parts = parts_of(parsed)
    assert [p.claim_count for p in parts] == [4, 4, 2]
    largest = max(len(e.to_bytes()) for _, e in domain.claim_events("t1", parsed))
    assert largest < MAX_MESSAGE_BYTES // 8, largest


def test_a_claim_heavier_than_a_part_travels_alone() -> None:
    made = [
        Claim("PCNA", [Service(Decimal("1.00"))]),
        Claim(
            "PCNB",
            adjustments=[Adj("CO", "45", Decimal("0.01"))] * (CLAIM_LINES_PER_EVENT + 1),
            charge_override=Decimal("50.00"),
        ),
        Claim("PCNC", [Service(Decimal("1.00"))]),
    ]
    [parsed] = remittances(parse_all(build_835(Transaction(claims=made))))
    assert [p.claim_count for p in parts_of(parsed)] == [1, 1, 1]


def test_unbundled_claims_are_the_v1_events_intake_used_to_publish() -> None:
    """What detection rebuilds from a part: per claim, v1's event id (remittance, "claim", ordinal), type,
    causation (its CLP segment), key and payload."""
    parsed = transaction(3)
    [(_, env)] = domain.claim_events("t1", parsed)
    rid = parsed.remittance.remittance_id
    unbundled = claims.claims_of(CLAIM_PAYMENTS.parse(env.to_bytes()))
    for claim, one in zip(parsed.claims, unbundled, strict=True):
        assert one.event_id == stable_id(rid, "claim", claim.claim_ordinal)
        assert one.event_type == "ClaimPaymentReceived" and one.payload == claim
        assert one.causation_id == f"remittance:{rid}#seg{claim.segment_ordinal}"
        assert (one.tenant_id, one.account_key) == (env.tenant_id, env.account_key)
        assert CLAIM_PAYMENTS_V1.parse(Outgoing.event(CLAIM_PAYMENTS_V1, one).value) == one


def test_which_claim_names_ordinal_and_segment_never_the_patient_control_number() -> None:
    parsed = transaction(3)
    [(_, env)] = domain.claim_events("t1", parsed)
    where, location = claims.which_claim(env, 1)
    second = parsed.claims[1]
    assert where.startswith(f"claim #2 (CLP segment {second.segment_ordinal})")
    assert location == {
        "claim_ordinal": "2",
        "segment_ordinal": str(second.segment_ordinal),
        "claims_part": "1",
    }
    assert second.patient_control_number not in where + str(location)


async def test_unbundled_runs_the_claims_handler_once_and_maps_outputs_and_failures_to_parts() -> None:
    """``shared.bundles.unbundled``: one call of the item handler over every claim of the parts, in order; each
    part gets its claims' outputs; a failure at a claim is raised at its part, naming the claim."""
    parts = [env for n in (2, 3) for _, env in domain.claim_events("t1", transaction(n))]
    calls: list[list[str]] = []

    async def handler(conn: Any, envs: Sequence[Envelope[ClaimPaymentReceived]]) -> list[list[Outgoing]]:
        calls.append([e.payload.patient_control_number for e in envs])
        for position, env in enumerate(envs):
            if env.payload.patient_control_number == poison:
                raise FailedInput(position, Rejected("plugin_error", "a rule raised"))
        return [[Outgoing(f"out.{e.payload.claim_ordinal}", "k", b"")] for e in envs]

    poison = "nobody"
    run = unbundled(claims.claims_of, handler, claims.which_claim)
    given = await run(None, parts)
    assert calls == [["PCN00000", "PCN00001", "PCN00000", "PCN00001", "PCN00002"]]
    assert [[o.topic for o in owed] for owed in given] == [["out.1", "out.2"], ["out.1", "out.2", "out.3"]]

    poison = "PCN00002"
    with pytest.raises(FailedInput) as failed:
        await run(None, parts)
    assert failed.value.position == 1 and isinstance(failed.value.cause, Rejected)
    assert failed.value.where.startswith("claim #3 (CLP segment ")
    assert failed.value.location["claim_ordinal"] == "3" and poison not in failed.value.where
    moved = failed.value.at(7)
    assert (moved.position, moved.where, moved.location) == (7, failed.value.where, failed.value.location)
