"""Row validation: the rows of one remittance (a :class:`RowGroup`) into a :class:`RemittanceDraft`.

Each row is checked against its record type (which columns it may fill, which it must) and each cell against
what it holds (amounts, dates, code lists), in line order; the first wrong cell stops the remittance with one
PHI-free :class:`DraftError` naming its line and column. Balancing is not done here: the draft goes to
:func:`~services.intake.drafts.assemble`, as the ``json`` feed's drafts do.
"""

from datetime import date
from decimal import Decimal

from contracts.events import ClaimAdjustment
from services.intake.csv_columns import (
    ADJUSTMENT,
    APPLICABLE,
    CLAIM,
    RECORD_TYPES,
    REMITTANCE,
    Row,
    RowGroup,
)
from services.intake.drafts import (
    AMOUNT_EXPECTED,
    DATE_EXPECTED,
    QUANTITY_EXPECTED,
    ClaimDraft,
    DraftError,
    HeaderDraft,
    ProviderAdjustmentDraft,
    RemittanceDraft,
    Where,
    parse_iso_date,
    parse_money,
    parse_quantity,
    shown_code,
)
from services.intake.feeds import FeedErrorReason
from services.intake.x12 import codes


class RowReader:
    """Reads one remittance's rows, in line order, into a :class:`RemittanceDraft`; first problem wins."""

    def __init__(self, group: RowGroup) -> None:
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
                if value and name not in APPLICABLE[record]:
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
