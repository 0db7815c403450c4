"""Staff entry: demand letters, provider-identified overpayments, and steps on a receivable (appeal, decision,
write-off, refund check, repayment schedule) — ``offsetstream letter add|import`` and ``offsetstream action``.

Letters arrive on paper; staff type them in (or import a JSON list). Each becomes a ``LetterReceived`` event on
``remit.letters.v1``, keyed by the provider–payer account, with a deterministic id so entering the same letter
twice changes nothing.
"""

import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field

from contracts.events import LetterReceived, RepaymentSchedule, StaffActionKind, StaffActionRecorded
from contracts.money import Money
from contracts.topics import LETTERS, Topic
from shared import envelopes, kafka_security
from shared.ids import account_key, stable_id
from shared.settings import Settings


class LetterEntry(BaseModel):
    """One letter as staff enter it (the JSON import format is a list of these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["demand_letter", "provider_identified"] = Field(default="demand_letter")
    payer_id: str = Field(min_length=1)
    payee_id: str = Field(min_length=1)
    fcn: str = Field(min_length=1, description="FCN / AR number printed on the letter.")
    amount: Money
    letter_date: date
    claims: tuple[str, ...] = Field(default=(), description="Claim numbers (ICN) the letter lists.")


def to_event(entry: LetterEntry, tenant_id: str, entered_by: str) -> tuple[str, bytes]:
    """(partition key, envelope bytes) of one entered letter."""
    reference = entry.fcn.strip()
    letter = LetterReceived(
        letter_id=stable_id("letter", tenant_id, entry.payer_id, reference, entry.letter_date, entry.kind),
        kind=entry.kind,
        payer_id=entry.payer_id,
        payee_id=entry.payee_id,
        reference=reference,
        amount=entry.amount,
        letter_date=entry.letter_date,
        claim_references=entry.claims,
        entered_by=entered_by,
    )
    key = account_key(tenant_id, entry.payer_id, entry.payee_id)
    event_type = "DemandLetterReceived" if entry.kind == "demand_letter" else "ProviderIdentifiedOverpayment"
    env = envelopes.build(
        letter,
        event_id=letter.letter_id,
        event_type=event_type,
        tenant_id=tenant_id,
        account_key=key,
        causation_id=f"staff:{entered_by}",
    )
    return key, env.to_bytes()


def read_import(path: Path) -> list[LetterEntry]:
    """A JSON file holding a list of letter entries (or one entry)."""
    raw: Any = json.loads(path.read_text())
    items = raw if isinstance(raw, list) else [raw]
    return [LetterEntry.model_validate(item) for item in items]


def action_event(
    kind: StaffActionKind,
    *,
    tenant_id: str,
    payer_id: str,
    payee_id: str,
    reference: str,
    effective: date,
    entered_by: str,
    amount: Decimal | None = None,
    outcome: Literal["upheld", "overturned"] | None = None,
    schedule: RepaymentSchedule | None = None,
) -> tuple[str, bytes]:
    """(partition key, envelope bytes) of one staff action on a receivable.

    The id of a repayment schedule also covers its terms: entering the same grant twice changes nothing, while
    a corrected grant (another amount or first due date) is a new fact that replaces the plan.
    """
    terms = () if schedule is None else tuple(schedule.model_dump(mode="json").values())
    action = StaffActionRecorded(
        action_id=stable_id(
            "action", tenant_id, payer_id, reference.strip(), kind, outcome, effective, *terms
        ),
        kind=kind,
        payer_id=payer_id,
        payee_id=payee_id,
        reference=reference.strip(),
        effective_date=effective,
        amount=amount,
        outcome=outcome,
        schedule=schedule,
        entered_by=entered_by,
    )
    key = account_key(tenant_id, payer_id, payee_id)
    event_type = {
        "appeal_filed": "AppealFiled",
        "appeal_decided": "AppealDecided",
        "write_off": "WriteOffRecorded",
        "refund_sent": "RefundSent",
        "repayment_schedule_granted": "RepaymentScheduleGranted",
    }[kind]
    env = envelopes.build(
        action,
        event_id=action.action_id,
        event_type=event_type,
        tenant_id=tenant_id,
        account_key=key,
        causation_id=f"staff:{entered_by}",
    )
    return key, env.to_bytes()


async def publish_events(settings: Settings, topic: Topic[Any], messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish (key, value) messages and wait for the broker's acknowledgement of each."""
    producer = AIOKafkaProducer(**kafka_security.client_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    count = 0
    try:
        for key, value in messages:
            await producer.send_and_wait(topic.name, key=key.encode(), value=value)
            count += 1
    finally:
        await producer.stop()
    return count


async def publish(settings: Settings, entries: Iterable[LetterEntry], tenant_id: str, entered_by: str) -> int:
    """Publish letters to ``remit.letters.v1``; detection merges each into its receivable."""
    return await publish_events(settings, LETTERS, (to_event(e, tenant_id, entered_by) for e in entries))
