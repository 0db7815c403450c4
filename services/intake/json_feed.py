"""The ``json`` feed parser: remittances as one JSON document (format in ``docs/feeds.md``).

Why: systems that already hold remittance data as objects (a clearinghouse API, a practice-management
database) can hand it over without flattening it into CSV or writing X12. The document nests claims and their
adjustments inside their remittance, so nothing has to be linked by key.

Validation is strict (unknown keys are errors, so a misspelt key cannot drop an amount) and per remittance (one
bad remittance never hides a good one). Amounts are JSON *strings*: a JSON number is read as a binary float by
most tools and may lose cents, so it is refused with an error that says so. Error messages name the JSON path
(``remittances[0].claims[2].paid``) and never echo a value. Balancing and the contract payloads come from the
same :func:`~services.intake.drafts.assemble` as the CSV feed.
"""

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from contracts.events import ClaimAdjustment
from services.intake.drafts import (
    ClaimDraft,
    DraftError,
    HeaderDraft,
    ProviderAdjustmentDraft,
    RemittanceDraft,
    Where,
    assemble,
    parse_iso_date,
    parse_money,
    parse_quantity,
    safe_name,
)
from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12 import codes

FEED = "json"
FORMAT = "offsetstream-remittance"
VERSION = 1
_SNIFF_MARK = b'"' + FORMAT.encode() + b'"'
_BOM = b"\xef\xbb\xbf"
_MAX_LISTED = 5
"""Validation problems listed per remittance in one FeedError; the count says how many there were."""


# --- value types -----------------------------------------------------------------------------------------------


def _amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError('amounts must be JSON strings such as "125.00"')
    if not isinstance(value, str):
        raise ValueError(
            'amounts must be JSON strings such as "125.00", not JSON numbers: a number is read as a '
            "binary float by many tools and may lose cents"
        )
    parsed = parse_money(value)
    if parsed is None:
        raise ValueError(
            'not a decimal amount with at most two decimals, such as "125.00" or "-40.50" '
            "(no currency sign or thousands separator)"
        )
    return parsed


def _quantity(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError('quantities must be JSON strings such as "2.5" or whole numbers, never fractions')
    if isinstance(value, int):
        return Decimal(value)
    parsed = parse_quantity(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError('not a number of units such as "1" or "2.5"')
    return parsed


def _iso_date(value: object) -> date:
    parsed = parse_iso_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError('not an ISO date string "YYYY-MM-DD"')
    return parsed


def _version(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"the version must be the JSON number {VERSION}")
    return value


def _one_of(valid: frozenset[str], what: str, listed: str | None = None) -> AfterValidator:
    shown = listed or " ".join(sorted(valid))

    def check(value: str) -> str:
        if value not in valid:
            raise ValueError(f"not {what}: expected one of {shown}")
        return value

    return AfterValidator(check)


Amount = Annotated[Decimal, BeforeValidator(_amount)]
Quantity = Annotated[Decimal, BeforeValidator(_quantity)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Text = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]
HandlingCode = Annotated[Text, _one_of(codes.BPR_HANDLING_CODES, "a handling code")]
PaymentMethod = Annotated[Text, _one_of(codes.BPR_PAYMENT_METHODS, "a payment method")]
CreditDebit = Annotated[Text, _one_of(codes.BPR_CREDIT_DEBIT, "a credit/debit flag")]
ClaimStatus = Annotated[
    Text,
    _one_of(
        codes.CLAIM_STATUS_CODES, "a claim status code", " ".join(sorted(codes.CLAIM_STATUS_CODES, key=int))
    ),
]
GroupCode = Annotated[Text, _one_of(codes.CAS_GROUP_CODES, "a claim adjustment group code")]
PlbReason = Annotated[Text, _one_of(codes.PLB_REASON_CODES, "one of the 41 valid PLB reason codes")]


# --- document models -------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt ``paid`` would otherwise vanish and the remittance mis-balance."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AdjustmentIn(_Strict):
    """One claim adjustment (CAS triple)."""

    group_code: GroupCode
    reason_code: Text
    amount: Amount
    quantity: Quantity | None = None


class ClaimIn(_Strict):
    """One claim with its adjustments."""

    patient_control_number: Text
    status_code: ClaimStatus
    charge: Amount
    paid: Amount
    patient_responsibility: Amount | None = None
    payer_claim_control_number: Text | None = None
    original_reference: Text | None = None
    service_date_from: IsoDate | None = None
    service_date_to: IsoDate | None = None
    claim_filing_indicator: Text | None = None
    adjustments: list[AdjustmentIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _dates_in_order(self) -> "ClaimIn":
        start, end = self.service_date_from, self.service_date_to
        if start is not None and end is not None and start > end:
            raise ValueError("service_date_to is before service_date_from")
        return self


class ProviderAdjustmentIn(_Strict):
    """One provider-level adjustment (PLB pair); positive amount = withheld from this payment."""

    provider_identifier: Text
    fiscal_period_date: IsoDate
    reason_code: PlbReason
    reference: Text | None = None
    amount: Amount


class RemittanceIn(_Strict):
    """One payment with its claims and provider-level adjustments."""

    payer_id: Text
    payer_name: Text
    payee_id: Text
    payee_name: Text
    trace_number: Text
    payment_date: IsoDate
    production_date: IsoDate | None = None
    total_paid: Amount
    handling_code: HandlingCode
    payment_method: PaymentMethod
    credit_debit: CreditDebit
    claims: list[ClaimIn] = Field(default_factory=list)
    provider_adjustments: list[ProviderAdjustmentIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _total_not_negative(self) -> "RemittanceIn":
        if self.total_paid < 0:
            raise ValueError("total_paid is negative; a debit is credit_debit D with a positive total_paid")
        return self


class DocumentIn(_Strict):
    """The envelope; remittances are validated one by one so one bad one never hides the others."""

    format: Literal["offsetstream-remittance"]
    version: Annotated[Literal[1], BeforeValidator(_version)]
    remittances: Annotated[list[Any], Field(min_length=1)]


# --- parser ----------------------------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` keeps the last of duplicate keys silently; two ``paid`` keys must be an error instead."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def json_path(loc: tuple[int | str, ...]) -> str:
    """``("remittances", 0, "claims", 2, "paid")`` → ``remittances[0].claims[2].paid`` (odd keys masked)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + safe_name(part)
    return text or "(document)"


def item_ordinal(raw: object, loc: tuple[int | str, ...]) -> int:
    """1-based position, within its remittance, of the item a location is in (the remittance itself is 1).

    Items are counted in a fixed order: each claim, then its adjustments, claim by claim, then the provider
    adjustments; fixed so that re-serialising the same data with other key order keeps every event id.
    """
    claims = raw.get("claims") if isinstance(raw, dict) else None
    claims = claims if isinstance(claims, list) else []

    def adjustments_of(claim: object) -> int:
        found = claim.get("adjustments") if isinstance(claim, dict) else None
        return len(found) if isinstance(found, list) else 0

    if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int):
        index = loc[1]
        before = sum(1 + adjustments_of(c) for c in claims[:index])
        ordinal = 1 + before + 1
        if len(loc) >= 4 and loc[2] == "adjustments" and isinstance(loc[3], int):
            ordinal += loc[3] + 1
        return ordinal
    if len(loc) >= 2 and loc[0] == "provider_adjustments" and isinstance(loc[1], int):
        return 1 + sum(1 + adjustments_of(c) for c in claims) + loc[1] + 1
    return 1


def _segment_of(loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 4 and loc[0] == "claims" and loc[2] == "adjustments":
        return "adjustment"
    if len(loc) >= 2 and loc[0] in ("claims", "provider_adjustments"):
        return "claim" if loc[0] == "claims" else "provider_adjustment"
    return "remittance"


class JsonParser:
    """Reads ``{"format": "offsetstream-remittance", "version": 1, "remittances": [...]}`` documents.

    Stateless and pure: the same bytes always give the same results and ids.
    """

    name = "json"

    def sniff(self, head: bytes) -> bool:
        """True when the first non-blank byte is ``{`` and the format name is within the first 4 KB."""
        head = head[:4096]
        return head.removeprefix(_BOM).lstrip().startswith(b"{") and _SNIFF_MARK in head

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield each remittance in document order, or a FeedError for each one that is not valid."""
        document = self._load(content, file_name)
        if isinstance(document, FeedError):
            yield document
            return
        try:
            envelope = DocumentIn.model_validate(document)
        except ValidationError as exc:
            yield self._invalid(exc, (), None, file_name, None, None, "the document envelope is not valid")
            return
        for position, raw in enumerate(envelope.remittances):
            yield self._remittance(raw, position, file_name, file_sha256, tenant_id)

    @staticmethod
    def _load(content: bytes, file_name: str) -> object | FeedError:
        def syntax(message: str, line: int | None = None) -> FeedError:
            return FeedError(
                FeedErrorReason.SYNTAX,
                message,
                file_name,
                segment_ordinal=line,
                expected="a UTF-8 JSON document (RFC 8259) without duplicate keys",
            )

        try:
            text = content.removeprefix(_BOM).decode("utf-8")
        except UnicodeDecodeError as exc:
            return syntax(f"the document is not UTF-8 (byte offset {exc.start})")
        try:
            document: object = json.loads(text, object_pairs_hook=_no_duplicates)
        except _DuplicateKeyError as exc:
            return syntax(f"an object has the key {safe_name(exc.key)} twice")
        except json.JSONDecodeError as exc:
            # ``msg`` names the syntax problem only; the line/column locate it without quoting the text.
            return syntax(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", exc.lineno)
        except RecursionError:
            return syntax("the document is nested too deeply")
        return document

    def _remittance(
        self, raw: object, position: int, file_name: str, file_sha256: str, tenant_id: str
    ) -> ParsedRemittance | FeedError:
        index = position + 1
        trace = raw.get("trace_number") if isinstance(raw, dict) else None
        trace = trace.strip() if isinstance(trace, str) else None
        try:
            remittance = RemittanceIn.model_validate(raw)
        except ValidationError as exc:
            return self._invalid(
                exc,
                ("remittances", position),
                raw,
                file_name,
                trace,
                index,
                f"remittance {index} is not valid",
            )
        try:
            draft = _draft(remittance, position)
            return assemble(
                draft, feed=FEED, file_name=file_name, file_sha256=file_sha256, tenant_id=tenant_id
            )
        except DraftError as exc:
            return exc.to_feed_error(file_name, trace, index)

    @staticmethod
    def _invalid(
        exc: ValidationError,
        prefix: tuple[int | str, ...],
        raw: object,
        file_name: str,
        trace: str | None,
        index: int | None,
        headline: str,
    ) -> FeedError:
        """One FeedError for all problems of a remittance: paths and pydantic's messages, never the input."""
        problems = exc.errors(include_input=False, include_url=False, include_context=False)
        listed = [
            f"{json_path(prefix + tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in problems[:_MAX_LISTED]
        ]
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        first = tuple(problems[0]["loc"])
        return FeedError(
            FeedErrorReason.INVALID_ELEMENT,
            f"{headline}: {'; '.join(listed)}{more}",
            file_name,
            transaction_control_number=trace or None,
            transaction_index=index,
            segment_ordinal=item_ordinal(raw, first) if prefix else None,
            segment_id=_segment_of(first) if prefix else "document",
            element=json_path(prefix + first) if prefix + first else None,
            expected="a document as described in docs/feeds.md (amounts and dates as strings)",
        )


def _draft(rem: RemittanceIn, position: int) -> RemittanceDraft:
    """The validated remittance as a draft; ordinals count items as :func:`item_ordinal` does."""
    base = f"remittances[{position}]"
    header = HeaderDraft(
        payer_id=rem.payer_id,
        payer_name=rem.payer_name,
        payee_id=rem.payee_id,
        payee_name=rem.payee_name,
        trace_number=rem.trace_number,
        handling_code=rem.handling_code,
        total_paid=rem.total_paid,
        credit_debit=rem.credit_debit,
        payment_method=rem.payment_method,
        payment_date=rem.payment_date,
        production_date=rem.production_date,
    )
    draft = RemittanceDraft(position + 1, header, Where(1, "remittance", f"{base}.total_paid", base))
    ordinal = 1
    for number, claim in enumerate(rem.claims):
        ordinal += 1
        path = f"{base}.claims[{number}]"
        draft.claims.append(
            ClaimDraft(
                where=Where(ordinal, "claim", f"{path}.paid", path),
                patient_control_number=claim.patient_control_number,
                status_code=claim.status_code,
                charge=claim.charge,
                paid=claim.paid,
                patient_responsibility=claim.patient_responsibility,
                claim_filing_indicator=claim.claim_filing_indicator,
                payer_claim_control_number=claim.payer_claim_control_number,
                original_reference=claim.original_reference,
                service_date_from=claim.service_date_from,
                service_date_to=claim.service_date_to,
                adjustments=[
                    ClaimAdjustment(
                        level="claim",
                        group_code=a.group_code,
                        reason_code=a.reason_code,
                        amount=a.amount,
                        quantity=a.quantity,
                    )
                    for a in claim.adjustments
                ],
            )
        )
        ordinal += len(claim.adjustments)
    for plb in rem.provider_adjustments:
        ordinal += 1
        draft.provider_adjustments.append(
            ProviderAdjustmentDraft(
                ordinal=ordinal,
                provider_identifier=plb.provider_identifier,
                fiscal_period_date=plb.fiscal_period_date,
                reason_code=plb.reason_code,
                reference=plb.reference,
                amount=plb.amount,
            )
        )
    return draft
