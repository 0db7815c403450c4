"""Claim payments as they travel (``remit.claim-payments.v2``: the claims of a transaction in one event) and as
the per-claim events consumers and the ledger know them by (``remit.claim-payments.v1``'s envelopes).

One rule for a claim's event id, causation and key, used by intake when it bundles claims and by detection when
it unbundles them: so a claim keeps the event id it had on v1 (``stable_id(remittance, "claim", ordinal)``),
and every row, evidence id and downstream event id derived from it is the same whichever topic brought it.
"""

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope, envelope_of
from contracts.events import ClaimPaymentReceived, ClaimPaymentsReceived
from contracts.topics import CLAIM_PAYMENTS_V1
from shared.batches import item_dead_letter
from shared.ids import stable_id, stable_ids
from shared.messages import Incoming, Outgoing


def claim_event_id(remittance_id: UUID, claim_ordinal: int) -> UUID:
    """The event id of one claim payment: its remittance and position, as on ``remit.claim-payments.v1``."""
    return claim_event_ids(remittance_id, (claim_ordinal,))[0]


def claim_event_ids(remittance_id: UUID, claim_ordinals: Iterable[int]) -> list[UUID]:
    """:func:`claim_event_id` of each of a remittance's ``claim_ordinals`` (the remittance's part of the name
    written once, not once a claim)."""
    return stable_ids((remittance_id, "claim"), claim_ordinals)


def claims_event_id(remittance_id: UUID, part: int) -> UUID:
    """The event id of one :class:`ClaimPaymentsReceived`: its remittance and part (a transaction's claims are
    cut into parts by a pure rule over the claims, so a rebuilt transaction has the same parts)."""
    return stable_id(remittance_id, "claims", part)


def claims_causation(remittance_id: UUID, part: int) -> str:
    """What caused a :class:`ClaimPaymentsReceived`: its remittance and part (like the patient tokens')."""
    return f"remittance:{remittance_id}#claims{part}"


def claims_of(envelope: Envelope[ClaimPaymentsReceived]) -> list[Envelope[ClaimPaymentReceived]]:
    """The claims of a v2 event as the per-claim events v1 carried, each exactly as
    ``remit.claim-payments.v1`` carried it: its :func:`claim_event_id`, type, causation (its CLP segment) and
    account key; their ``occurred_at`` is the event's. Every claim of the event has the event's remittance
    (``ClaimPaymentsReceived`` refuses any other), so its text is written once for all their ids and causations."""
    remittance_id = envelope.payload.remittance_id
    claims = envelope.payload.claims
    segment = f"remittance:{remittance_id}#seg"
    build = envelope_of(ClaimPaymentReceived)
    return [
        build(
            event_id=event_id,
            event_type="ClaimPaymentReceived",
            occurred_at=envelope.occurred_at,
            tenant_id=envelope.tenant_id,
            account_key=envelope.account_key,
            causation_id=f"{segment}{claim.segment_ordinal}",
            payload=claim,
        )
        for claim, event_id in zip(
            claims, claim_event_ids(remittance_id, (c.claim_ordinal for c in claims)), strict=True
        )
    ]


def inputs_of(envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """What detection handles of one input: a v2 event's claims as the v1 events they would have been; any
    other input (a v1 claim, a PLB pair, a letter) is its own one item."""
    return claims_of(envelope) if isinstance(envelope.payload, ClaimPaymentsReceived) else [envelope]


def which_input(envelope: Envelope[Any], index: int) -> tuple[str, dict[str, str]] | None:
    """:func:`which_claim` for a v2 event; None for an input that is its own one item (its failure is its own,
    dead-lettered as it came)."""
    return which_claim(envelope, index) if isinstance(envelope.payload, ClaimPaymentsReceived) else None


def which_claim(envelope: Envelope[ClaimPaymentsReceived], index: int) -> tuple[str, dict[str, str]]:
    """The claim at ``index`` of a v2 event in PHI-free words and ``location.*`` headers: its ordinal and CLP
    segment in the transaction, and the event's part (never its patient control number)."""
    claims: Sequence[ClaimPaymentReceived] = envelope.payload.claims
    claim = claims[index]
    where = (
        f"claim #{claim.claim_ordinal} (CLP segment {claim.segment_ordinal}), item {index + 1} of "
        f"{len(claims)} in part {envelope.payload.part} of the remittance's claims"
    )
    return where, {
        "claim_ordinal": str(claim.claim_ordinal),
        "segment_ordinal": str(claim.segment_ordinal),
        "claims_part": str(envelope.payload.part),
    }


def claim_dead_letter(
    service: str,
    envelope: Envelope[ClaimPaymentsReceived],
    claim: Envelope[ClaimPaymentReceived],
    exc: Exception,
    where: str,
    location: dict[str, str],
) -> Outgoing:
    """The dead letter of one claim of a v2 event that can never be processed: the claim as its own v1 event
    (``claim``, as :func:`claims_of` gave it: the bytes ``remit.claim-payments.v1`` carried), so ``offsetstream dlt replay`` sends it to v1, which
    detection still consumes, and re-drives that claim alone; the event it came in is named in the headers
    (``location.claims_event``). Its source position is that of no v1 record (-1): the claim was never on v1."""
    item = Incoming(
        topic=CLAIM_PAYMENTS_V1.name,
        partition=-1,
        offset=-1,
        key=CLAIM_PAYMENTS_V1.key_of(claim).encode(),
        value=claim.to_bytes(),
    )
    return item_dead_letter(service, item, exc, where, {**location, "claims_event": str(envelope.event_id)})
