"""Dead-letter bodies that point at the original bytes instead of carrying them.

A dead-letter record normally holds the original message byte for byte. Two kinds hold a small JSON body
instead, so that a record is always small and bounded whatever the input:

- :class:`RawFileRef`, every record of intake whose input is a payer file: the file is kept once, in
  PostgreSQL (``intake.raw_files``, by tenant and SHA-256, written in the same transaction as the rejection),
  and each bad transaction's record names the file, its SHA-256 and the transaction's byte range. A file with
  2 000 unbalanced transactions used to copy the whole file into 2 000 records.
- :class:`OmittedBody`, any record whose original would not fit the broker's message cap once the headers are
  added: the original stays where it was consumed from (``source_topic``/``_partition``/``_offset``).

``offsetstream dlt show --content/--raw`` and ``offsetstream dlt replay`` read the bytes back from where the
body says they are kept. Both bodies are PHI-free: SHA-256, sizes, file name, positions and ids only.
"""

import json
from dataclasses import asdict, dataclass
from typing import Any

BODY_KIND = "offsetstream_dead_letter_body"
"""Key naming the kind of a referencing body; no envelope or payer file has it."""

RAW_FILE_REF = "raw_file_reference"
OMITTED = "omitted"
RAW_FILES_TABLE = "intake.raw_files"


@dataclass(frozen=True)
class RawFileRef:
    """A payer file kept in ``intake.raw_files``, and the part of it a record is about."""

    tenant_id: str
    sha256: str
    file_name: str
    size_bytes: int
    source: str
    format_hint: str | None
    event_id: str
    """The file's RawFileReceived event id (a replay rebuilds the same envelope: same id, same key)."""
    transaction_index: int | None = None
    byte_range: tuple[int, int] | None = None
    """``[start, end)`` of the transaction's ST..SE in the file, when it could be found."""
    stored_in: str = RAW_FILES_TABLE

    def to_bytes(self) -> bytes:
        """The record body (JSON)."""
        body: dict[str, Any] = {BODY_KIND: RAW_FILE_REF, **asdict(self)}
        body["byte_range"] = list(self.byte_range) if self.byte_range else None
        return json.dumps(body, sort_keys=True).encode()


@dataclass(frozen=True)
class OmittedBody:
    """The original was left out because it would not fit the broker's cap; ``kept_at`` says where it is."""

    size_bytes: int
    sha256: str
    kept_at: str
    """``source_position`` (the headers' source topic/partition/offset) or ``nowhere`` (a committed output
    the broker refused; the effects are in the ledger)."""
    topic: str = ""
    """The topic the omitted message was for, when it is not the record's source."""

    def to_bytes(self) -> bytes:
        """The record body (JSON)."""
        return json.dumps({BODY_KIND: OMITTED, **asdict(self)}, sort_keys=True).encode()


def read_body(value: bytes) -> RawFileRef | OmittedBody | None:
    """The reference a record body holds, or None for a body that is the original message itself."""
    if BODY_KIND.encode() not in value[:4096]:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    kind = body.pop(BODY_KIND, None)
    try:
        if kind == RAW_FILE_REF:
            span = body.pop("byte_range", None)
            return RawFileRef(**body, byte_range=(int(span[0]), int(span[1])) if span else None)
        if kind == OMITTED:
            return OmittedBody(**body)
    except (TypeError, ValueError, IndexError):
        return None
    return None
