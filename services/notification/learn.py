"""What must never leave: notification learns the patient control numbers of every account, as keyed digests,
so the outbound scrubber (``shared.phi``) can mask them wherever a payer's free text glues one to a reference.

Why every claim payment: a recoupment may cite *any* claim the account was ever paid for (the payer decides
later which one was overpaid), and a reference no layout can split (``plain``) is then masked only because the
claim's patient control number is known. Overpayments add the numbers detection tied to a receivable. Nothing
else of the claim matters here, so this path is built to be cheap (issue #18.2):

- each record is read through a tolerant model of just the fields used (tenant, account, the numbers), not the
  whole ``ClaimPaymentReceived`` contract with its money and dates; a record that does not even have those is
  its own consumers' to dead-letter (detection, matching) and is skipped here;
- the idempotency id is read the same way (:func:`learn_id`), not by decoding the whole envelope;
- the digests of a whole batch are written in one statement (``store.add_tokens``: tokens and their lengths,
  ``ON CONFLICT DO NOTHING``), so a batch of 200 claims costs one round trip, not 200.

Learning is idempotent by itself (the same digest twice is one row), so replays and bisected re-runs are
harmless.
"""

import hashlib
import logging
from collections.abc import Sequence

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.topics import CLAIM_PAYMENTS, OVERPAYMENTS
from services.notification.rows import LearntToken
from services.notification.store import NotificationStore
from shared import phi
from shared.messages import BatchHandler, Incoming, PerInput

log = logging.getLogger(__name__)

_TOLERANT = ConfigDict(extra="ignore", frozen=True)


class _ClaimNumbers(BaseModel):
    """The one field of a claim payment notification needs."""

    model_config = _TOLERANT
    patient_control_number: str


class _OverpaymentNumbers(BaseModel):
    """The one field of an overpayment notification needs."""

    model_config = _TOLERANT
    patient_control_numbers: list[str]


class _ClaimRecord(BaseModel):
    """A claim-payment envelope as far as learning reads it."""

    model_config = _TOLERANT
    tenant_id: str
    account_key: str
    payload: _ClaimNumbers


class _OverpaymentRecord(BaseModel):
    """An overpayment envelope as far as learning reads it."""

    model_config = _TOLERANT
    tenant_id: str
    account_key: str
    payload: _OverpaymentNumbers


class _EventId(BaseModel):
    """Just the envelope's id."""

    model_config = _TOLERANT
    event_id: str


def learn_id(incoming: Incoming) -> str:
    """The learning agent's own idempotency ids: it reads other stages' topics, so an event id it records must
    never make this stage's other agents take their own input with the same id for done. Input without an
    event id is not this agent's to dead-letter (its consumers do): it gets the digest of its bytes."""
    try:
        return f"learn:{_EventId.model_validate_json(incoming.value).event_id}"
    except ValidationError:
        return f"learn:sha256:{hashlib.sha256(incoming.value).hexdigest()}"


def tokens_of(incoming: Incoming) -> list[LearntToken]:
    """The digests a claim-payment or overpayment record teaches (none when it cannot be read)."""
    try:
        if incoming.topic == OVERPAYMENTS.name:
            over = _OverpaymentRecord.model_validate_json(incoming.value)
            tenant, key, numbers = over.tenant_id, over.account_key, over.payload.patient_control_numbers
        else:
            claim = _ClaimRecord.model_validate_json(incoming.value)
            tenant, key = claim.tenant_id, claim.account_key
            numbers = [claim.payload.patient_control_number]
    except ValidationError:
        log.warning("not learning from %s: not a readable envelope", incoming.topic)
        return []
    return [LearntToken(tenant, key, kind, n, d, a) for kind, n, d, a in phi.shaped_token_rows("id", numbers)]


def learner(store: NotificationStore) -> BatchHandler:
    """The batch handler of ``remit.claim-payments.v1`` and ``remit.overpayments.v1``: one statement per
    batch, nothing published."""

    async def learn(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
        await store.add_tokens(conn, [t for incoming in batch for t in tokens_of(incoming)])
        return [[] for _ in batch]

    return BatchHandler(learn)


TOPICS = (CLAIM_PAYMENTS, OVERPAYMENTS)
"""What learning consumes."""
