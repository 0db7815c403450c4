"""Drafts: what the ``csv`` and ``json`` feeds read, before balancing, and the one function that balances them.

Both feeds read their own syntax into drafts (:class:`RemittanceDraft` and friends); :func:`assemble` checks a
draft with the same balancing rules as the 835 and builds the contract payloads, so the two feeds cannot
drift apart in what they accept or emit. The value readers (amounts, quantities, ISO dates) and the PHI-free
helpers for messages are shared the same way.
"""

import re
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
from shared.ids import stable_id

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
