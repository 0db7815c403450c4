"""The ``csv`` feed parser: remittances exported as one flat CSV table (format in ``docs/feeds.md``).

Why this shape: billing companies get remittance data from payer portals and clearinghouses as spreadsheet
exports far more often than as raw 835s. One table with a ``record`` column (``remittance``, ``claim``,
``adjustment``, ``plb``) carries everything reconciliation takes from an 835, one fact per row, so a
spreadsheet export or a short SQL query can produce it, and the same balancing rules as the 835 check it.

The module also holds the *drafts* (:class:`RemittanceDraft` and friends) and :func:`assemble`, which the
``json`` feed reuses: both formats read their syntax into drafts, and one function balances a draft and
builds the contract payloads, so the two feeds cannot drift apart in what they accept or emit.
"""

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from uuid import UUID

from pydantic import ValidationError

from contracts.events import (
    ClaimAdjustment,
    ClaimPaymentReceived,
    ProviderAdjustmentReceived,
    RemittanceReceived,
)
from contracts.money import ZERO, to_money
from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12 import codes
from shared.ids import stable_id

FEED = "csv"

# --- values shared by the csv and json feeds ------------------------------------------------------------------

_AMOUNT = re.compile(r"-?\d{1,15}(?:\.\d{1,15})?")
_QUANTITY = re.compile(r"-?\d{1,12}(?:\.\d{1,6})?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_SAFE_CODE = re.compile(r"[A-Za-z0-9]{1,4}")

AMOUNT_EXPECTED = "a decimal amount such as 125.00 or -40.50 (no currency sign or thousands separator, at most two decimals)"
DATE_EXPECTED = "an ISO date YYYY-MM-DD"
QUANTITY_EXPECTED = "a number of units such as 1 or 2.5"


def parse_money(raw: str) -> Decimal | None:
    """A two-place amount, or None when the text is not one.

    Conversion goes through :func:`contracts.money.to_money` (Decimal, ROUND_HALF_UP), but digits beyond the
    cent are refused unless they are zeros, as the X12 parser does: rounding a payer's amount would hide the
    very cent differences that balancing exists to catch.
    """
    if not _AMOUNT.fullmatch(raw):
        return None
    value = to_money(raw)
    if value != Decimal(raw):
        return None
    return value if value else ZERO


def parse_quantity(raw: str) -> Decimal | None:
    """Adjusted units (not money, so not rounded), or None when the text is not a number."""
    return Decimal(raw) if _QUANTITY.fullmatch(raw) else None


def parse_iso_date(raw: str) -> date | None:
    """A ``YYYY-MM-DD`` calendar date, or None (``date.fromisoformat`` alone also takes other ISO shapes)."""
    if not _ISO_DATE.fullmatch(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def safe_name(name: str) -> str:
    """A column or key name fit for a message: identifier-shaped names only, anything else may be data."""
    return name if _SAFE_NAME.fullmatch(name) else "<unrecognised>"


def shown_code(raw: str) -> str:
    """A code quoted in a message when it looks like a code (codes are never PHI), else a placeholder."""
    if not raw:
        return "missing"
    return repr(raw) if _SAFE_CODE.fullmatch(raw) else "<not a code>"


# --- drafts: what both feeds read, before balancing --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the source: ``ordinal`` becomes ``segment_ordinal``, ``element`` the column or JSON path."""

    ordinal: int
    segment_id: str
    element: str
    label: str
    """How people find it: ``line 7`` (csv) or ``remittances[0].claims[1]`` (json)."""


class DraftError(Exception):
    """Stops one remittance; the feed turns it into a :class:`FeedError` with its file identity."""

    def __init__(
        self, reason: FeedErrorReason, message: str, where: Where | None, expected: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.where, self.expected = reason, message, where, expected

    def to_feed_error(
        self, file_name: str, trace_number: str | None, transaction_index: int | None
    ) -> FeedError:
        """The PHI-free FeedError for this problem (the trace number is the feed's transaction number)."""
        where = self.where
        return FeedError(
            self.reason,
            self.message,
            file_name,
            transaction_control_number=trace_number or None,
            transaction_index=transaction_index,
            segment_ordinal=where.ordinal if where else None,
            segment_id=where.segment_id if where else None,
            element=where.element if where else None,
            expected=self.expected,
        )


@dataclass(frozen=True, slots=True)
class HeaderDraft:
    """The payment: payer, payee, trace number and declared total (the 835's BPR, TRN and N1 loops)."""

    payer_id: str
    payer_name: str
    payee_id: str
    payee_name: str
    trace_number: str
    handling_code: str
    total_paid: Decimal
    credit_debit: str
    payment_method: str
    payment_date: date
    production_date: date | None = None


@dataclass(slots=True)
class ClaimDraft:
    """One claim; ``where`` locates the claim and names its ``paid`` field for balancing errors."""

    where: Where
    patient_control_number: str
    status_code: str
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal | None = None
    claim_filing_indicator: str | None = None
    payer_claim_control_number: str | None = None
    original_reference: str | None = None
    service_date_from: date | None = None
    service_date_to: date | None = None
    adjustments: list[ClaimAdjustment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProviderAdjustmentDraft:
    """One provider-level adjustment (a PLB reason/amount pair); positive = withheld from this payment."""

    ordinal: int
    provider_identifier: str
    fiscal_period_date: date
    reason_code: str
    reference: str | None
    amount: Decimal


@dataclass(slots=True)
class RemittanceDraft:
    """A whole remittance as read; ``total_where`` names the declared total for the transaction balance."""

    index: int
    header: HeaderDraft
    total_where: Where
    claims: list[ClaimDraft] = field(default_factory=list)
    provider_adjustments: list[ProviderAdjustmentDraft] = field(default_factory=list)


def remittance_id_of(tenant_id: str, payer_id: str, trace_number: str) -> UUID:
    """The remittance id scheme of the X12 parser with the trace number standing in for ST02.

    No interchange or group exists, so those parts are None: the same payment sent as CSV or JSON maps onto
    the same id and is posted once however often, and in whichever of the two formats, it arrives.
    """
    return stable_id("remittance", tenant_id, payer_id, trace_number, None, None, trace_number)


def assemble(
    draft: RemittanceDraft, *, feed: str, file_name: str, file_sha256: str, tenant_id: str
) -> ParsedRemittance:
    """Balance a draft to the cent and build the contract payloads; raises :class:`DraftError`.

    A claim balances (``charge − Σadjustments = paid``) only when it lists adjustments: portal exports often
    omit them, and a claim without any gets a warning instead of being refused when charge ≠ paid. The
    transaction always balances: ``Σpaid − Σprovider adjustments = total_paid`` (negated for a debit).
    """
    head = draft.header
    rid = remittance_id_of(tenant_id, head.payer_id, head.trace_number)
    common = {
        "remittance_id": rid,
        "payer_id": head.payer_id,
        "trace_number": head.trace_number,
        "payment_date": head.payment_date,
    }
    warnings: list[str] = []
    claims: list[ClaimPaymentReceived] = []
    claims_paid = ZERO
    try:
        for number, claim in enumerate(draft.claims, start=1):
            _balance_claim(number, claim, warnings)
            claims.append(
                ClaimPaymentReceived.model_validate(
                    {
                        **common,
                        "claim_ordinal": number,
                        "segment_ordinal": claim.where.ordinal,
                        "patient_control_number": claim.patient_control_number,
                        "status_code": claim.status_code,
                        "charge": claim.charge,
                        "paid": claim.paid,
                        "patient_responsibility": claim.patient_responsibility,
                        "claim_filing_indicator": claim.claim_filing_indicator,
                        "payer_claim_control_number": claim.payer_claim_control_number,
                        "original_reference": claim.original_reference,
                        "service_date_from": claim.service_date_from,
                        "service_date_to": claim.service_date_to,
                        "service_line_count": 0,
                        "adjustments": tuple(claim.adjustments),
                    }
                )
            )
            claims_paid += claim.paid
        pairs = [
            ProviderAdjustmentReceived.model_validate(
                {
                    **common,
                    "segment_ordinal": plb.ordinal,
                    "pair_index": 1,
                    "provider_identifier": plb.provider_identifier,
                    "fiscal_period_date": plb.fiscal_period_date,
                    "reason_code": plb.reason_code,
                    "reference": plb.reference,
                    "amount": plb.amount,
                }
            )
            for plb in draft.provider_adjustments
        ]
        plb_total = sum((plb.amount for plb in draft.provider_adjustments), ZERO)
        debit = head.credit_debit == "D"
        declared = -head.total_paid if debit else head.total_paid
        computed = claims_paid - plb_total
        if computed != declared:
            raise DraftError(
                FeedErrorReason.UNBALANCED,
                f"remittance {draft.index} ({draft.total_where.label}) does not balance: Σclaim paid "
                f"{claims_paid} − Σprovider adjustments {plb_total} = {computed}, but {draft.total_where.element}"
                f" is {head.total_paid}{' (debit)' if debit else ''}",
                draft.total_where,
                expected=f"total_paid = Σpaid − Σprovider adjustments = {computed}",
            )
        remittance = RemittanceReceived.model_validate(
            {
                "remittance_id": rid,
                "file_sha256": file_sha256,
                "file_name": file_name,
                "feed": feed,
                "transaction_control_number": head.trace_number,
                "transaction_index": draft.index,
                "payer_id": head.payer_id,
                "payer_name": head.payer_name,
                "payee_id": head.payee_id,
                "payee_name": head.payee_name,
                "trace_number": head.trace_number,
                "handling_code": head.handling_code,
                "total_paid": head.total_paid,
                "credit_debit": head.credit_debit,
                "payment_method": head.payment_method,
                "payment_date": head.payment_date,
                "production_date": head.production_date,
                "claim_count": len(claims),
                "adjustment_count": len(pairs),
                "total_claim_paid": claims_paid,
                "total_provider_adjustments": plb_total,
            }
        )
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
        raise DraftError(
            FeedErrorReason.INVALID_ELEMENT,
            f"values do not fit the event contract: {fields}",
            None,
            expected="values within the contract's limits",
        ) from None
    return ParsedRemittance(remittance, tuple(claims), tuple(pairs), tuple(warnings))


def _balance_claim(number: int, claim: ClaimDraft, warnings: list[str]) -> None:
    where = claim.where
    if not claim.adjustments:
        if claim.charge != claim.paid:
            warnings.append(
                f"claim {number} ({where.label}) lists no adjustments, so charge {claim.charge} − paid "
                f"{claim.paid} is not explained and the claim balance was not checked"
            )
        return
    total = sum((a.amount for a in claim.adjustments), ZERO)
    expected = claim.charge - total
    if expected != claim.paid:
        raise DraftError(
            FeedErrorReason.UNBALANCED,
            f"claim {number} ({where.label}) does not balance: charge {claim.charge} − Σadjustments {total} "
            f"= {expected}, but paid is {claim.paid}",
            where,
            expected=f"paid = charge − Σadjustments = {expected}",
        )


# --- the CSV layout -------------------------------------------------------------------------------------------

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
_APPLICABLE = {r: frozenset(("record", *REQUIRED[r], *OPTIONAL[r])) for r in RECORD_TYPES}
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


class _CsvSyntaxError(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line, self.problem = line, problem


def _read_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # csv's messages describe the syntax ("',' expected after '\"'"), never the field's content.
            raise _CsvSyntaxError(reader.line_num, str(exc)) from None
        start, previous = previous + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


@dataclass(slots=True)
class _Group:
    """The rows of one remittance (same trace number), or of a trace number no remittance row has."""

    first_line: int
    trace: str
    index: int | None
    rows: list[Row] = field(default_factory=list)
    problem: DraftError | None = None


class CsvParser:
    """Reads the offsetstream CSV remittance format; several remittances per file, linked by trace number.

    Stateless and pure, like every feed parser: the same bytes always give the same results and ids.
    """

    name = "csv"

    def sniff(self, head: bytes) -> bool:
        """True when the first non-blank line is a header naming both ``record`` and ``trace_number``."""
        text = decode(head)
        for line in text.splitlines():
            if line.strip():
                cells = {cell.strip().strip('"').strip().lower() for cell in line.split(",")}
                return {"record", "trace_number"} <= cells
        return False

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield each remittance (in the order of their ``remittance`` rows) or a FeedError for each bad one.

        Rows whose trace number matches no remittance row are reported as one FeedError per trace number, in
        the order of their first line, so no row is ever dropped silently. A header or CSV syntax problem
        is one file-level FeedError: no row can be trusted then.
        """
        try:
            records = list(_read_records(decode(content)))
        except _CsvSyntaxError as exc:
            yield FeedError(
                FeedErrorReason.SYNTAX,
                f"line {exc.line}: the CSV cannot be read: {exc.problem}",
                file_name,
                segment_ordinal=exc.line,
                expected="RFC 4180 CSV: comma separated, fields with commas or quotes in double quotes",
            )
            return
        if not records:
            yield FeedError(
                FeedErrorReason.MISSING_SEGMENT,
                "the file is empty",
                file_name,
                expected="a header line naming the columns, then one row per record",
            )
            return
        header_line, header_cells = records[0]
        columns = [cell.strip().lower() for cell in header_cells]
        problem = _check_header(columns, header_line)
        if problem is not None:
            yield problem.to_feed_error(file_name, None, None)
            return
        rows = [_row(line, cells, columns) for line, cells in records[1:]]
        if not rows:
            yield FeedError(
                FeedErrorReason.MISSING_SEGMENT,
                "the file has a header but no rows",
                file_name,
                expected="at least one remittance row",
            )
            return
        for group in _group_rows(rows):
            if group.index is None or group.problem is not None:
                problem = group.problem or _orphan_problem(group)
                yield problem.to_feed_error(file_name, group.trace, group.index)
                continue
            try:
                draft = _RowReader(group).read()
                yield assemble(
                    draft, feed=FEED, file_name=file_name, file_sha256=file_sha256, tenant_id=tenant_id
                )
            except DraftError as exc:
                yield exc.to_feed_error(file_name, group.trace, group.index)


def _check_header(columns: list[str], line: int) -> DraftError | None:
    if "record" not in columns or "trace_number" not in columns:
        # Not a header at all (say, a file without one): say so without quoting cells, which may be data.
        return DraftError(
            FeedErrorReason.MISSING_SEGMENT,
            f"line {line}: the first line is not a header naming the columns record and trace_number",
            Where(line, "header", "record", f"line {line}"),
            expected="a header line first: " + ", ".join(HEADER_REQUIRED),
        )
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        shown = safe_name(name) if name else f"(empty, column {position})"
        if name not in KNOWN_COLUMNS:
            return DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {line}: the header names an unknown column {shown} (column {position})",
                Where(line, "header", shown, f"line {line}"),
                expected="only the columns listed in docs/feeds.md (a misspelt column would lose data)",
            )
        if name in seen:
            return DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {line}: the header names column {name} twice",
                Where(line, "header", name, f"line {line}"),
                expected="each column once",
            )
        seen.add(name)
    missing = [name for name in HEADER_REQUIRED if name not in seen]
    if missing:
        return DraftError(
            FeedErrorReason.MISSING_SEGMENT,
            f"line {line}: the header lacks required column(s) {', '.join(missing)}",
            Where(line, "header", missing[0], f"line {line}"),
            expected="a header naming: " + ", ".join(HEADER_REQUIRED),
        )
    return None


def _row(line: int, cells: list[str], columns: list[str]) -> Row:
    width_error = None
    if len(cells) > len(columns):
        width_error = f"line {line} has {len(cells)} fields but the header has {len(columns)}"
    values = {name: cells[pos].strip() if pos < len(cells) else "" for pos, name in enumerate(columns)}
    return Row(line, values, width_error)


def _group_rows(rows: list[Row]) -> list[_Group]:
    """Rows by trace number, in the order of each group's first line; remittance rows open groups."""
    groups: dict[str, _Group] = {}
    loose: list[_Group] = []
    count = 0
    for row in rows:
        if row.record != REMITTANCE:
            continue
        if not row.trace:
            loose.append(_loose(row, "column trace_number is empty", "trace_number", "the trace number"))
            continue
        group = groups.get(row.trace)
        if group is not None:
            group.problem = group.problem or DraftError(
                FeedErrorReason.INVALID_ELEMENT,
                f"line {row.line}: a second remittance row has the trace number of line {group.first_line}",
                Where(row.line, REMITTANCE, "trace_number", f"line {row.line}"),
                expected="one remittance row per trace number in a file",
            )
            continue
        count += 1
        groups[row.trace] = _Group(row.line, row.trace, count)
    orphans: dict[str, _Group] = {}
    for row in rows:
        if row.record == REMITTANCE and not row.trace:
            continue
        if not row.trace:
            loose.append(_loose(row, "column trace_number is empty", "trace_number", "the trace number"))
        elif row.trace in groups:
            groups[row.trace].rows.append(row)
        else:
            orphans.setdefault(row.trace, _Group(row.line, row.trace, None)).rows.append(row)
    ordered = [*groups.values(), *orphans.values(), *loose]
    return sorted(ordered, key=lambda g: g.first_line)


def _loose(row: Row, problem: str, column: str, expected: str) -> _Group:
    record = row.record if row.record in RECORD_TYPES else "row"
    return _Group(
        row.line,
        "",
        None,
        [row],
        DraftError(
            FeedErrorReason.INVALID_ELEMENT,
            f"line {row.line}: {problem}",
            Where(row.line, record, column, f"line {row.line}"),
            expected=expected,
        ),
    )


def _orphan_problem(group: _Group) -> DraftError:
    first = group.rows[0]
    lines = ", ".join(str(r.line) for r in group.rows[:10]) + (", …" if len(group.rows) > 10 else "")
    record = first.record if first.record in RECORD_TYPES else "row"
    return DraftError(
        FeedErrorReason.MISSING_SEGMENT,
        f"{len(group.rows)} row(s) (line(s) {lines}) have a trace number that no remittance row in the file has",
        Where(first.line, record, "trace_number", f"line {first.line}"),
        expected="a remittance row with the same trace_number",
    )


class _RowReader:
    """Reads one remittance's rows, in line order, into a :class:`RemittanceDraft`; first problem wins."""

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.draft: RemittanceDraft | None = None

    def read(self) -> RemittanceDraft:
        """The draft, or :class:`DraftError` for the first row that is wrong."""
        for row in self.group.rows:
            if row.width_error:
                raise DraftError(
                    FeedErrorReason.SYNTAX,
                    row.width_error,
                    Where(
                        row.line,
                        row.record if row.record in RECORD_TYPES else "row",
                        "record",
                        f"line {row.line}",
                    ),
                    expected="no more fields than header columns (quote fields that contain commas)",
                )
            record = row.record
            if record not in RECORD_TYPES:
                raise self._error(
                    row,
                    "record",
                    "column record is not a known record type",
                    "remittance, claim, adjustment or plb",
                )
            for name, value in row.values.items():
                if value and name not in _APPLICABLE[record]:
                    raise self._error(
                        row,
                        name,
                        f"column {name} must be empty on a {record} row",
                        f"only the columns of a {record} row (a filled foreign column usually means shifted data)",
                    )
            if record == REMITTANCE:
                self._remittance(row)
                continue
            draft = self.draft
            if draft is None:
                raise self._error(
                    row,
                    "trace_number",
                    f"a {record} row comes before its remittance row (line {self.group.first_line})",
                    "the remittance row above the rows of its remittance",
                )
            if record == CLAIM:
                self._claim(row, draft)
            elif record == ADJUSTMENT:
                self._adjustment(row, draft)
            else:
                self._plb(row, draft)
        assert self.draft is not None, "a group with an index always holds its remittance row"
        return self.draft

    # --- value helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _error(row: Row, column: str, problem: str, expected: str) -> DraftError:
        record = row.record if row.record in RECORD_TYPES else "row"
        return DraftError(
            FeedErrorReason.INVALID_ELEMENT,
            f"line {row.line}, column {column}: {problem}",
            Where(row.line, record, column, f"line {row.line}"),
            expected=expected,
        )

    def _text(self, row: Row, column: str) -> str:
        value = row.values.get(column, "")
        if not value:
            raise self._error(row, column, "is empty", f"a value: {column} is required on a {row.record} row")
        return value

    @staticmethod
    def _optional(row: Row, column: str) -> str | None:
        return row.values.get(column) or None

    def _amount(self, row: Row, column: str) -> Decimal:
        raw = row.values.get(column, "")
        value = parse_money(raw)
        if value is None:
            what = "is empty" if not raw else "is not an amount with at most two decimals"
            raise self._error(row, column, what, AMOUNT_EXPECTED)
        return value

    def _optional_amount(self, row: Row, column: str) -> Decimal | None:
        return self._amount(row, column) if row.values.get(column) else None

    def _date(self, row: Row, column: str) -> date:
        raw = row.values.get(column, "")
        value = parse_iso_date(raw)
        if value is None:
            raise self._error(row, column, "is empty" if not raw else "is not a valid date", DATE_EXPECTED)
        return value

    def _optional_date(self, row: Row, column: str) -> date | None:
        return self._date(row, column) if row.values.get(column) else None

    def _code(
        self, row: Row, column: str, valid: frozenset[str], expected: str | None = None, what: str = "valid"
    ) -> str:
        raw = row.values.get(column, "")
        if raw not in valid:
            raise self._error(
                row,
                column,
                f"code {shown_code(raw)} is not {what}",
                expected or "one of " + " ".join(sorted(valid)),
            )
        return raw

    # --- records ------------------------------------------------------------------------------------------

    def _remittance(self, row: Row) -> None:
        handling = self._code(row, "handling_code", codes.BPR_HANDLING_CODES)
        total = self._amount(row, "total_paid")
        if total < 0:
            raise self._error(
                row,
                "total_paid",
                f"is negative ({total})",
                "a payment amount ≥ 0 (credit_debit D marks a debit)",
            )
        credit_debit = self._code(row, "credit_debit", codes.BPR_CREDIT_DEBIT)
        method = self._code(row, "payment_method", codes.BPR_PAYMENT_METHODS)
        header = HeaderDraft(
            payer_id=self._text(row, "payer_id"),
            payer_name=self._text(row, "payer_name"),
            payee_id=self._text(row, "payee_id"),
            payee_name=self._text(row, "payee_name"),
            trace_number=self._text(row, "trace_number"),
            handling_code=handling,
            total_paid=total,
            credit_debit=credit_debit,
            payment_method=method,
            payment_date=self._date(row, "payment_date"),
            production_date=self._optional_date(row, "production_date"),
        )
        where = Where(row.line, REMITTANCE, "total_paid", f"line {row.line}")
        self.draft = RemittanceDraft(self.group.index or 0, header, where)

    def _claim(self, row: Row, draft: RemittanceDraft) -> None:
        pcn = self._text(row, "patient_control_number")
        status = self._code(
            row,
            "status_code",
            codes.CLAIM_STATUS_CODES,
            "one of " + " ".join(sorted(codes.CLAIM_STATUS_CODES, key=int)),
        )
        start = self._optional_date(row, "service_date_from")
        end = self._optional_date(row, "service_date_to")
        if start and end and start > end:
            raise self._error(row, "service_date_to", "is before service_date_from", "a range from ≤ to")
        draft.claims.append(
            ClaimDraft(
                where=Where(row.line, CLAIM, "paid", f"line {row.line}"),
                patient_control_number=pcn,
                status_code=status,
                charge=self._amount(row, "charge"),
                paid=self._amount(row, "paid"),
                patient_responsibility=self._optional_amount(row, "patient_responsibility"),
                claim_filing_indicator=self._optional(row, "claim_filing_indicator"),
                payer_claim_control_number=self._optional(row, "payer_claim_control_number"),
                original_reference=self._optional(row, "original_reference"),
                service_date_from=start,
                service_date_to=end,
            )
        )

    def _adjustment(self, row: Row, draft: RemittanceDraft) -> None:
        claim = self._claim_of(row, draft)
        group = self._code(row, "group_code", codes.CAS_GROUP_CODES, "one of CO OA PI PR")
        reason = self._text(row, "reason_code")
        raw_quantity = row.values.get("quantity", "")
        quantity = parse_quantity(raw_quantity) if raw_quantity else None
        if raw_quantity and quantity is None:
            raise self._error(row, "quantity", "is not a number", QUANTITY_EXPECTED)
        claim.adjustments.append(
            ClaimAdjustment(
                level="claim",
                group_code=group,
                reason_code=reason,
                amount=self._amount(row, "amount"),
                quantity=quantity,
            )
        )

    def _claim_of(self, row: Row, draft: RemittanceDraft) -> ClaimDraft:
        """The claim an adjustment row belongs to: ``claim_ordinal`` when given, else the nearest claim row
        above it with the same patient control number (a reversal and its correction share one)."""
        pcn = self._text(row, "patient_control_number")
        raw_ordinal = row.values.get("claim_ordinal", "")
        if raw_ordinal:
            number = int(raw_ordinal) if raw_ordinal.isdigit() else 0
            if not 1 <= number <= len(draft.claims):
                raise self._error(
                    row,
                    "claim_ordinal",
                    "does not name a claim row above this row",
                    f"the 1-based position of a claim row of this remittance above it (1..{len(draft.claims)})",
                )
            claim = draft.claims[number - 1]
            if claim.patient_control_number != pcn:
                raise self._error(
                    row,
                    "patient_control_number",
                    f"differs from that of claim {number} named by claim_ordinal",
                    "the patient control number of the claim the adjustment belongs to",
                )
            return claim
        for claim in reversed(draft.claims):
            if claim.patient_control_number == pcn:
                return claim
        raise self._error(
            row,
            "patient_control_number",
            "matches no claim row above this row in its remittance",
            "an adjustment row below the claim row it adjusts, with the same patient_control_number",
        )

    def _plb(self, row: Row, draft: RemittanceDraft) -> None:
        reason = self._code(
            row,
            "reason_code",
            codes.PLB_REASON_CODES,
            "one of the 41 PLB adjustment reason codes, such as WO, FB, 72, L6, WU, OB",
            what="one of the 41 valid PLB reason codes",
        )
        fiscal = self._date(row, "fiscal_period_date")
        draft.provider_adjustments.append(
            ProviderAdjustmentDraft(
                ordinal=row.line,
                provider_identifier=self._text(row, "provider_identifier"),
                fiscal_period_date=fiscal,
                reason_code=reason,
                reference=self._optional(row, "reference"),
                amount=self._amount(row, "amount"),
            )
        )
