"""The feed-parser plugin interface (entry-point group ``offsetstream.feed_parsers``).

A feed parser turns a payer file's bytes into remittance documents. It is pure: no I/O, no clock. A file may
hold several transactions; each is yielded on its own so one broken transaction never hides the good ones.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from contracts.events import ClaimPaymentReceived, ProviderAdjustmentReceived, RemittanceReceived


class FeedErrorReason(StrEnum):
    """Bounded reasons, safe as a metric label and a DLT header."""

    UNKNOWN_FORMAT = "unknown_format"
    SYNTAX = "syntax"
    ENVELOPE = "envelope"
    MISSING_SEGMENT = "missing_segment"
    INVALID_ELEMENT = "invalid_element"
    UNBALANCED = "unbalanced"
    UNSUPPORTED = "unsupported"
    TOO_LARGE = "too_large"
    """A transaction whose events cannot fit the broker's message cap (one claim with hundreds of thousands of
    adjustments): refused whole, never retried, see ``services.intake.app``."""


@dataclass(frozen=True)
class FeedError(Exception):
    """A precise, PHI-free description of what is wrong and where.

    ``location`` names the file, interchange/transaction control numbers, segment ordinal, segment id and
    element position as far as they are known; ``expected`` says what a valid file has there.
    """

    reason: FeedErrorReason
    message: str
    file_name: str
    interchange_control_number: str | None = None
    transaction_control_number: str | None = None
    transaction_index: int | None = None
    segment_ordinal: int | None = None
    segment_id: str | None = None
    element: str | None = None
    expected: str | None = None
    claim_ordinal: int | None = None

    def __str__(self) -> str:
        where = [f"file {self.file_name}"]
        if self.interchange_control_number:
            where.append(f"ISA13 {self.interchange_control_number}")
        if self.transaction_control_number:
            where.append(f"ST02 {self.transaction_control_number}")
        if self.segment_ordinal is not None:
            where.append(f"segment #{self.segment_ordinal}")
        if self.segment_id:
            where.append(self.segment_id + (f" {self.element}" if self.element else ""))
        text = f"{self.reason.value}: {self.message} ({', '.join(where)})"
        if self.expected:
            text += f"; expected {self.expected}"
        return text

    def location(self) -> dict[str, str]:
        """Location fields as strings, for DLT headers (no element *values*: they may be PHI)."""
        fields = {
            "file": self.file_name,
            "isa13": self.interchange_control_number,
            "st02": self.transaction_control_number,
            "transaction_index": self.transaction_index,
            "segment_ordinal": self.segment_ordinal,
            "segment_id": self.segment_id,
            "element": self.element,
            "claim_ordinal": self.claim_ordinal,
        }
        return {k: str(v) for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class ParsedRemittance:
    """One transaction read, balanced and turned into contract payloads, in document order."""

    remittance: RemittanceReceived
    claims: tuple[ClaimPaymentReceived, ...]
    adjustments: tuple[ProviderAdjustmentReceived, ...]
    warnings: tuple[str, ...] = field(default=())


@runtime_checkable
class FeedParser(Protocol):
    """What every feed parser plugin provides."""

    name: str

    def sniff(self, head: bytes) -> bool:
        """True when the first bytes of a file look like this feed (used when no format is named)."""
        ...

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield each transaction of the file, or a :class:`FeedError` for each one that cannot be read.

        A file-level error (unreadable envelope) is a single FeedError. Never raises for bad input.
        """
        ...
