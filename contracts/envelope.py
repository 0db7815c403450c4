"""The envelope every Kafka message of offsetstream travels in (DESIGN.md "The flow")."""

from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

P = TypeVar("P", bound=BaseModel)

SCHEMA_VERSION = 1


class Envelope(BaseModel, Generic[P]):
    """Metadata shared by every event, around a typed payload.

    ``event_id`` is deterministic (UUIDv5 of source document, position and event type), so a replayed or
    re-ingested document yields the same ids and every consumer can drop what it has already applied.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(
        description="Deterministic UUIDv5 of (source document identity, position, event type)."
    )
    event_type: str = Field(description="Past-tense name of the fact, e.g. `ReceivableOpened`.")
    schema_version: int = Field(default=SCHEMA_VERSION, description="Major version of the payload contract.")
    occurred_at: AwareDatetime = Field(description="When the producing service recorded the fact (UTC).")
    tenant_id: str = Field(description="The clinic (billing-company customer) the event belongs to.")
    account_key: str = Field(
        description="Opaque partition key: hash of (tenant, payer id, payee id). Never a name or member id."
    )
    causation_id: str = Field(
        description="The event id or document line (file hash, segment ordinal) that caused this event."
    )
    payload: P = Field(description="The event's typed body.")

    def to_bytes(self) -> bytes:
        """Serialize for Kafka: JSON, money as strings, timestamps in ISO 8601 with offset."""
        return self.model_dump_json().encode()


@cache
def envelope_of(payload_type: type[P]) -> type["Envelope[P]"]:
    """``Envelope[payload_type]``, held for the life of the process.

    Why: pydantic keeps its parametrised generics in a weak cache, and profiles of the running stages showed it
    building ``Envelope[...]`` classes again (schema generation and all, milliseconds each) on the hot path of
    intake and detection; a strong cache of the few payload types makes each one once."""
    model: Any = Envelope[payload_type]  # type: ignore[valid-type]
    return model  # type: ignore[no-any-return]


def parse_envelope(raw: bytes | str, payload_type: type[P]) -> "Envelope[P]":
    """Parse a message tolerantly: fields unknown to this consumer (a newer producer's) are ignored."""
    return envelope_of(payload_type).model_validate_json(raw, extra="ignore")


def utc_now() -> datetime:
    """The one place wall-clock time enters contracts; tests pass their own ``occurred_at``."""
    return datetime.now(UTC)
