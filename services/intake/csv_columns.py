"""The CSV remittance table's layout (``docs/feeds.md``): record types, the columns each row type must or may
fill, and a data row as read, grouped by the remittance it belongs to."""

from dataclasses import dataclass, field

from services.intake.drafts import DraftError

REMITTANCE, CLAIM, ADJUSTMENT, PLB = "remittance", "claim", "adjustment", "plb"
RECORD_TYPES = (REMITTANCE, CLAIM, ADJUSTMENT, PLB)

REQUIRED: dict[str, tuple[str, ...]] = {
    REMITTANCE: (
        "trace_number",
        "payer_id",
        "payer_name",
        "payee_id",
        "payee_name",
        "payment_date",
        "total_paid",
        "handling_code",
        "payment_method",
        "credit_debit",
    ),
    CLAIM: ("trace_number", "patient_control_number", "status_code", "charge", "paid"),
    ADJUSTMENT: ("trace_number", "patient_control_number", "group_code", "reason_code", "amount"),
    PLB: ("trace_number", "provider_identifier", "fiscal_period_date", "reason_code", "amount"),
}
"""Columns a row of each record type must fill (and the header must always name)."""

OPTIONAL: dict[str, tuple[str, ...]] = {
    REMITTANCE: ("production_date",),
    CLAIM: (
        "patient_responsibility",
        "payer_claim_control_number",
        "original_reference",
        "service_date_from",
        "service_date_to",
        "claim_filing_indicator",
    ),
    ADJUSTMENT: ("claim_ordinal", "quantity"),
    PLB: ("reference",),
}
"""Columns a row may fill; the header may leave them out altogether."""

HEADER_REQUIRED = ("record", *dict.fromkeys(c for r in RECORD_TYPES for c in REQUIRED[r]))
KNOWN_COLUMNS = frozenset(HEADER_REQUIRED) | {c for r in RECORD_TYPES for c in OPTIONAL[r]}
APPLICABLE = {r: frozenset(("record", *REQUIRED[r], *OPTIONAL[r])) for r in RECORD_TYPES}
_BOM = "\ufeff"


def decode(content: bytes) -> str:
    """UTF-8 (a leading BOM, as spreadsheet tools write, is dropped); else Latin-1, which always decodes."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    return text.removeprefix(_BOM)


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its 1-based line number in the file and its cells by column name (stripped)."""

    line: int
    values: dict[str, str]
    width_error: str | None = None

    @property
    def record(self) -> str:
        """The record type as written, lower-cased."""
        return self.values.get("record", "").lower()

    @property
    def trace(self) -> str:
        """The trace number linking the row to its remittance."""
        return self.values.get("trace_number", "")


@dataclass(slots=True)
class RowGroup:
    """The rows of one remittance (same trace number), or of a trace number no remittance row has."""

    first_line: int
    trace: str
    index: int | None
    rows: list[Row] = field(default_factory=list)
    problem: DraftError | None = None
