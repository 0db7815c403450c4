"""Building envelopes the same way in every service."""

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from contracts.envelope import Envelope, envelope_of, utc_now


def build(
    payload: BaseModel,
    *,
    event_id: UUID,
    event_type: str,
    tenant_id: str,
    account_key: str,
    causation_id: str,
) -> Envelope[Any]:
    """Wrap a payload; ``event_id`` must be deterministic (see ``shared.ids``)."""
    return envelope_of(type(payload))(
        event_id=event_id,
        event_type=event_type,
        occurred_at=utc_now(),
        tenant_id=tenant_id,
        account_key=account_key,
        causation_id=causation_id,
        payload=payload,
    )
