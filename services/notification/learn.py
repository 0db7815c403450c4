"""What must never leave: notification learns the patient control numbers of every account, as keyed digests,
so the outbound scrubber (``shared.phi``) can mask them wherever a payer's free text glues one to a reference.

Why every claim's number: a recoupment may cite *any* claim the account was ever paid for (the payer decides
later which one was overpaid), and a reference no layout can split (``plain``) is then masked only because the
claim's patient control number is known. Overpayments add the numbers detection tied to a receivable.

Where they come from (issue #18): intake publishes, per 835 transaction (per 1 000 claims of a larger one),
one ``PatientTokensSeen`` on ``remit.patient-tokens.v1`` carrying the digests of its claims' numbers, never the
numbers (``services.intake.domain.token_events``). Notification consumed every ``ClaimPaymentReceived`` before;
the consumer, the stream and the idempotency claim of each message cost far more than the one field it read,
so one message per transaction replaces about 60 (docs/security.md, "Learning patient control numbers").
Deploy intake before notification: a notification that no longer reads claim payments must find every claim
of the backlog in a patient tokens event. This path stays cheap otherwise too (issue #18.2):

- each record is read through a tolerant model of just the fields used (tenant, account, the digests or
  numbers). A patient tokens record that does not even have those is dead-lettered here: this stage is that
  topic's only consumer, so skipping it would drop it silently. An overpayment record that unreadable is
  matching's to dead-letter, and is skipped here;
- the idempotency id is read the same way (:func:`learn_id`), not by decoding the whole envelope;
- the digests of a whole batch are written in one statement (``store.add_tokens``: tokens, their lengths and
  the account's token generation), so a batch costs one round trip whatever its size.

Learning is idempotent by itself (the same digest twice is one row, and moves no generation), so replays and
bisected re-runs are harmless.
"""

import hashlib
import logging
from collections.abc import Sequence

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.topics import OVERPAYMENTS, PATIENT_TOKENS
from services.notification.rows import LearntToken
from services.notification.store import NotificationStore
from shared import phi
from shared.messages import BatchHandler, Incoming, PerInput, Rejected, refusal

log = logging.getLogger(__name__)

_TOLERANT = ConfigDict(extra="ignore", frozen=True)


class _Token(BaseModel):
    """One digest of a patient tokens event."""

    model_config = _TOLERANT
    length: int
    digest: str
    alphanumeric: bool = False


class _TokenDigests(BaseModel):
    """The fields of a patient tokens event notification needs: the digests, and the key they were made with."""

    model_config = _TOLERANT
    tokens: list[_Token]
    key_id: str | None = None


class _OverpaymentNumbers(BaseModel):
    """The one field of an overpayment notification needs."""

    model_config = _TOLERANT
    patient_control_numbers: list[str]


class _TokensRecord(BaseModel):
    """A patient tokens envelope as far as learning reads it."""

    model_config = _TOLERANT
    tenant_id: str
    account_key: str
    payload: _TokenDigests


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
    event id gets the digest of its bytes. The topic is part of every id: the same bytes on both topics
    (a poison record sent to each) are two inputs, and taking the second for a duplicate of the first would
    skip a patient tokens record this stage alone must dead-letter."""
    try:
        return f"learn:{incoming.topic}:{_EventId.model_validate_json(incoming.value).event_id}"
    except ValidationError:
        return f"learn:{incoming.topic}:sha256:{hashlib.sha256(incoming.value).hexdigest()}"


def tokens_of(incoming: Incoming) -> list[LearntToken]:
    """The digests a patient-tokens or overpayment record teaches. Intake's digests are taken as they come:
    ``shared.phi`` made them there, as it does here for an overpayment. An unreadable overpayment teaches
    nothing (matching dead-letters it); an unreadable patient tokens record raises ``ValidationError``."""
    if incoming.topic != OVERPAYMENTS.name:
        seen = _TokensRecord.model_validate_json(incoming.value)
        if seen.payload.key_id is not None and seen.payload.key_id != phi.key_id():
            raise Rejected(
                "phi_key_mismatch",
                f"patient tokens made under PHI key {seen.payload.key_id}, this notification holds key "
                f"{phi.key_id()}: give intake and notification the same OFFSETSTREAM_PHI_KEY, then replay",
            )
        return [
            LearntToken(seen.tenant_id, seen.account_key, "id", t.length, t.digest, t.alphanumeric)
            for t in seen.payload.tokens
        ]
    try:
        over = _OverpaymentRecord.model_validate_json(incoming.value)
    except ValidationError:
        log.warning("not learning from %s: not a readable envelope", incoming.topic)
        return []
    numbers = over.payload.patient_control_numbers
    return [
        LearntToken(over.tenant_id, over.account_key, kind, n, d, a)
        for kind, n, d, a in phi.shaped_token_rows("id", numbers)
    ]


def learner(store: NotificationStore) -> BatchHandler:
    """The batch handler of ``remit.patient-tokens.v1`` and ``remit.overpayments.v1``: one statement per
    batch, nothing published; an unreadable patient tokens record is dead-lettered (``invalid_message``), and
    so is one made under another PHI key (``phi_key_mismatch``: a misconfigured intake or notification must
    show, not leave numbers unmasked)."""

    async def learn(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
        learnt: list[LearntToken] = []
        given: list[PerInput] = []
        for incoming in batch:
            try:
                learnt += tokens_of(incoming)
            except (ValidationError, Rejected) as exc:
                given.append(refusal(exc))
            else:
                given.append([])
        await store.add_tokens(conn, learnt)
        return given

    return BatchHandler(learn)


TOPICS = (PATIENT_TOKENS, OVERPAYMENTS)
"""What learning consumes."""
