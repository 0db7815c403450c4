"""Payload models of every event type, one section per topic (see ``contracts.topics``).

Conventions: amounts are :data:`~contracts.money.Money` (string on the wire); dates are ISO dates; a PLB amount
keeps the 835's sign (positive = withheld from this payment, negative = added to it). No model carries patient
names, member ids or addresses: the patient control number (CLP01) is the provider's own account number and is
the only claim-level identifier that crosses a topic, because matching needs it.

One module of a little over 500 lines on purpose: it is the whole vocabulary between the stages, read by
downstream teams top to bottom, one section per topic; splitting it would scatter that one read.
"""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from contracts.money import ZERO, Money


class Contract(BaseModel):
    """Base of every payload: immutable, strict when produced (consumers relax this per call)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _to_rate(value: object) -> Decimal:
    if isinstance(value, float | bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("rates must be given as a decimal string, never a float")
    try:
        rate = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError("not a rate") from exc
    if not rate.is_finite() or rate < 0:
        raise ValueError("a rate must be a finite, non-negative decimal fraction")
    return rate


Rate = Annotated[
    Decimal,
    BeforeValidator(_to_rate),
    PlainSerializer(str, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["0.1150"]}),
]
"""An annual interest rate as a decimal fraction string, e.g. ``"0.1150"`` for 11.50 %."""


# --- remit.intake.v1 -------------------------------------------------------------------------------------------


class RawFileReceived(Contract):
    """A payer file as it arrived (CLI or drop folder); the intake service parses it."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    file_name: str = Field(description="Base name of the file as delivered (no directory).")
    content: bytes = Field(description="The file's exact bytes, URL-safe base64 in JSON.")
    sha256: str = Field(description="Hex SHA-256 of `content`; part of the file's identity for dedupe.")
    source: Literal["cli", "drop_folder", "api", "replay"] = Field(
        description="How the file entered the system."
    )
    format_hint: str | None = Field(
        default=None,
        description="Feed parser name to use (e.g. `x12_835`); sniffed from the bytes when absent.",
    )


# --- remit.file-replays.v1 -------------------------------------------------------------------------------------


class FileReplayRequested(Contract):
    """Staff ask intake to process a payer file it already keeps again (``intake.raw_files``: every file with a
    rejected transaction), exactly as ``offsetstream dlt replay`` of that file's dead letters would: remittances
    already posted are recognised and skipped, rejected transactions get another try. Carries no payer data:
    the file is named by its SHA-256 and read back by intake, the only stage that may read payer files.
    """

    request_id: UUID = Field(
        description="Deterministic id: (tenant, file SHA-256, request id of the form or command); the same "
        "submission sent twice replays the file once."
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the file to process again (its identity)."
    )
    entered_by: str = Field(description="Who asked (staff user id), for the audit trail.")


# --- remit.remittances.v1 --------------------------------------------------------------------------------------


class RemittanceReceived(Contract):
    """One 835 transaction (ST..SE) or its equivalent in another feed: the payment and its totals."""

    remittance_id: UUID = Field(
        description="Deterministic id: (tenant, payer, TRN02, ISA13, GS06, ST02) — a reissued file dedupes."
    )
    file_sha256: str = Field(description="SHA-256 of the file the transaction came from.")
    file_name: str = Field(description="Base name of that file.")
    feed: str = Field(description="Feed parser that read it, e.g. `x12_835`, `csv`, `json`.")
    interchange_control_number: str | None = Field(default=None, description="ISA13.")
    group_control_number: str | None = Field(default=None, description="GS06.")
    transaction_control_number: str = Field(description="ST02 (or the feed's own transaction number).")
    transaction_index: int = Field(description="1-based position of the transaction in the file.")
    payer_id: str = Field(description="Payer identifier: N1*PR N104, else TRN03, else the payer name.")
    payer_name: str = Field(description="Payer name from N1*PR.")
    payee_id: str = Field(
        description="Payee NPI (N1*PE XX) or TIN; with tenant and payer it forms the account."
    )
    payee_name: str = Field(description="Payee (provider organisation) name from N1*PE.")
    trace_number: str = Field(description="TRN02: check or EFT trace number.")
    handling_code: str = Field(description="BPR01: I (remittance + payment), H (notification only), ...")
    total_paid: Money = Field(description="BPR02: total actual provider payment.")
    credit_debit: str = Field(description="BPR03: C (credit) or D (debit).")
    payment_method: str = Field(description="BPR04: ACH, CHK, NON, FWT, BOP.")
    payment_date: date = Field(description="BPR16: check issue or EFT effective date.")
    production_date: date | None = Field(
        default=None, description="DTM*405: when the payer produced the 835."
    )
    claim_count: int = Field(description="Number of claim payments (CLP) in the transaction.")
    adjustment_count: int = Field(description="Number of PLB reason/amount pairs in the transaction.")
    total_claim_paid: Money = Field(description="Sum of CLP04 over the transaction's claims.")
    total_provider_adjustments: Money = Field(description="Sum of all PLB amounts (positive = withheld).")


# --- remit.claim-payments.v1 -----------------------------------------------------------------------------------


class ClaimAdjustment(Contract):
    """One CAS reason/amount triple, at claim (2100) or service (2110) level."""

    level: Literal["claim", "service"] = Field(description="Loop the CAS came from.")
    group_code: str = Field(description="CAS01: CO, OA, PI or PR (and CR in a 004010X091A1 transaction).")
    reason_code: str = Field(description="CARC, e.g. 45, 18, B13.")
    amount: Money = Field(description="Adjustment amount; negative on reversals.")
    quantity: Decimal | None = Field(default=None, description="Adjusted units, when given.")


class ClaimPaymentReceived(Contract):
    """One claim (CLP loop 2100) of a remittance."""

    remittance_id: UUID = Field(description="The remittance the claim belongs to.")
    payer_id: str = Field(description="Payer identifier, as on the remittance.")
    trace_number: str = Field(description="TRN02 of the remittance.")
    payment_date: date = Field(description="BPR16 of the remittance.")
    claim_ordinal: int = Field(description="1-based position of the claim in its transaction.")
    segment_ordinal: int = Field(
        description="1-based position of the CLP segment in its transaction (ST = 1)."
    )
    patient_control_number: str = Field(description="CLP01: the provider's claim/account number.")
    status_code: str = Field(
        description="CLP02: 1/2/3 processed, 4 denied, 19-21 forwarded, 22 reversal, ..."
    )
    charge: Money = Field(description="CLP03: total charge.")
    paid: Money = Field(description="CLP04: amount paid on the claim (negative on a reversal).")
    patient_responsibility: Money | None = Field(default=None, description="CLP05.")
    claim_filing_indicator: str | None = Field(default=None, description="CLP06, e.g. MA, MB, 12, CI.")
    payer_claim_control_number: str | None = Field(default=None, description="CLP07: the payer's ICN/DCN.")
    original_reference: str | None = Field(
        default=None, description="REF*F8: the original claim's reference."
    )
    service_date_from: date | None = Field(default=None, description="Earliest service date (DTM*232/472).")
    service_date_to: date | None = Field(default=None, description="Latest service date (DTM*233/472).")
    service_line_count: int = Field(description="Number of SVC lines.")
    adjustments: tuple[ClaimAdjustment, ...] = Field(default=(), description="All CAS triples, both levels.")
    services: tuple["ServicePayment", ...] = Field(
        default=(), description="Service lines (SVC loop 2110), for fee-schedule and duplicate checks."
    )


class ServicePayment(Contract):
    """One service line (SVC, loop 2110) of a claim."""

    line_ordinal: int = Field(description="1-based position of the SVC within its claim.")
    procedure_qualifier: str = Field(description="SVC01-1: HC (HCPCS/CPT), NU, AD, ...")
    procedure_code: str = Field(description="SVC01-2: procedure code.")
    modifiers: tuple[str, ...] = Field(default=(), description="SVC01-3..6: procedure modifiers.")
    charge: Money = Field(description="SVC02: line charge.")
    paid: Money = Field(description="SVC03: line paid amount.")
    units: Decimal | None = Field(
        default=None,
        description="SVC05: units of service paid; 1 when an 835 leaves SVC05 out, as the guide says. "
        "None when a feed does not tell.",
    )
    units_submitted: Decimal | None = Field(
        default=None, description="SVC07: units originally submitted, when the payer reports them."
    )
    service_date: date | None = Field(default=None, description="DTM*472 (or 150) of the line.")


# --- remit.claim-payments.v2 -----------------------------------------------------------------------------------


class ClaimPaymentsReceived(Contract):
    """The claims of one 835 transaction, in document order: one event per transaction, or per
    :data:`CLAIMS_PER_EVENT` claims (fewer when they carry many lines, :data:`CLAIM_LINES_PER_EVENT`) of a
    larger one. Replaces one ``remit.claim-payments.v1`` message per claim (issue #18): the consumer's cost per
    message (fetch, stream, offsets, idempotency claim) and the broker's per record were most of what a claim
    cost. Each claim is exactly the ``ClaimPaymentReceived`` v1 carried, and a consumer that needs one event
    per claim rebuilds it with the v1 event id (``shared.claim_events``), so nothing downstream changes."""

    remittance_id: UUID = Field(description="The remittance (835 transaction) the claims belong to.")
    part: int = Field(ge=1, description="1-based part of the transaction's claims this event carries.")
    first_claim_ordinal: int = Field(ge=1, description="claim_ordinal of the first claim carried.")
    claim_count: int = Field(ge=1, description="How many claims this event carries (the length of `claims`).")
    claims: tuple[ClaimPaymentReceived, ...] = Field(
        min_length=1,
        description="The claims, consecutive in document order, each exactly as `remit.claim-payments.v1` "
        "carried it (same `remittance_id`).",
    )

    @model_validator(mode="after")
    def _check_claims(self) -> "ClaimPaymentsReceived":
        """A count, first ordinal or remittance that disagrees with the claims is a broken message, refused
        whole rather than read as some other set of claims."""
        if self.claim_count != len(self.claims):
            raise ValueError(f"claim_count is {self.claim_count} but {len(self.claims)} claims are carried")
        if self.claims[0].claim_ordinal != self.first_claim_ordinal:
            raise ValueError("first_claim_ordinal is not the claim_ordinal of the first claim carried")
        if any(claim.remittance_id != self.remittance_id for claim in self.claims):
            raise ValueError("a claim carried belongs to another remittance than the event's")
        return self


CLAIMS_PER_EVENT = 100
"""Claims carried by one :class:`ClaimPaymentsReceived` event at most. At 100 the per-message cost a consumer
pays (about 300 µs of detection's CPU, against 85–93 µs of rules per claim) falls to 3 µs a claim, and a chunk
of ordinary claims (600–1 500 bytes of JSON each) stays near 150 KB, well inside the 1 MiB a detection worker
fetches per partition; more claims per event would save little more, and lengthen the re-run that takes a
claim that can never be processed out of its event (it is dead-lettered alone, ``shared.bundles``)."""

CLAIM_LINES_PER_EVENT = 4000
"""Service lines plus CAS triples carried by one :class:`ClaimPaymentsReceived` event at most (a claim with
more travels alone). Measured: a claim is at most ~1 KiB of JSON plus ~100 bytes per CAS triple and ~220 per
service line with every element at its X12 maximum, so an event stays under ~1.1 MiB however heavy its claims,
a fourteenth of the broker's 16 MiB message cap, while an ordinary transaction's 100 claims are one event."""


# --- remit.provider-adjustments.v1 -----------------------------------------------------------------------------


class ProviderAdjustmentReceived(Contract):
    """One reason/amount pair of a PLB segment."""

    remittance_id: UUID = Field(description="The remittance the PLB belongs to.")
    payer_id: str = Field(description="Payer identifier, as on the remittance.")
    trace_number: str = Field(description="TRN02 of the remittance.")
    payment_date: date = Field(description="BPR16 of the remittance.")
    segment_ordinal: int = Field(description="1-based position of the PLB segment in its transaction.")
    pair_index: int = Field(description="1..6: which reason/amount pair of the PLB segment.")
    provider_identifier: str = Field(description="PLB01: provider identifier (NPI or TIN).")
    fiscal_period_date: date = Field(description="PLB02: last day of the provider's fiscal year.")
    reason_code: str = Field(description="PLB03-1 (etc.): adjustment reason code, e.g. WO, FB, 72, L6.")
    reference: str | None = Field(default=None, description="PLB03-2 (etc.): reference, e.g. an FCN; raw.")
    amount: Money = Field(
        description="PLB04 (etc.): positive = withheld from this payment, negative = added."
    )


# --- remit.patient-tokens.v1 ----------------------------------------------------------------------------------


class PatientToken(Contract):
    """One patient control number (or an alphanumeric piece of one) as a keyed digest, never the value."""

    length: int = Field(ge=2, description="Characters of the normalised token (blanks trimmed, upper case).")
    digest: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="BLAKE2b-128 (hex) of the normalised token, personalised `offsetstream-phi` "
        "(`shared.phi.digest`): what notification stores and compares, so this topic carries no PHI.",
    )
    alphanumeric: bool = Field(description="The token is ASCII letters and digits only.")


class PatientTokensSeen(Contract):
    """The patient control numbers of a transaction's claims, as digests: one event per transaction, or per
    :data:`PATIENT_TOKENS_PER_EVENT` claims of a larger one. Notification learns them to mask those numbers
    in outbound text, instead of reading every claim payment (issue #18: one message per transaction, not
    one per claim)."""

    remittance_id: UUID = Field(description="The remittance (835 transaction) the claims belong to.")
    part: int = Field(ge=1, description="1-based part of the transaction's claims this event covers.")
    first_claim_ordinal: int = Field(ge=1, description="claim_ordinal of the first claim covered.")
    claim_count: int = Field(ge=1, description="How many claims this event covers.")
    tokens: tuple[PatientToken, ...] = Field(
        description="Every distinct token of those claims' patient control numbers (CLP01): the number as "
        "written and, when it has separators, its alphanumeric pieces of 4 or more characters."
    )
    key_id: str | None = Field(
        default=None,
        description="Public name of the key the digests were made with (`shared.phi.key_id`: a keyed digest of "
        "a constant); a consumer holding another key refuses the event instead of learning digests that match "
        "nothing. Absent on events published before it existed.",
    )


PATIENT_TOKENS_PER_EVENT = 1000
"""Claims covered by one :class:`PatientTokensSeen` event at most (about 70 bytes a claim on the wire)."""


# --- remit.overpayments.v1 -------------------------------------------------------------------------------------

EvidenceChannel = Literal["claim", "deferral", "letter", "provider_identified"]


class OverpaymentDetected(Contract):
    """A detection rule found evidence of an overpayment; merged into one receivable per reference."""

    receivable_id: UUID = Field(
        description="The receivable this evidence belongs to: the one already known by any identifier the "
        "evidence names (reference, payer claim numbers), else a new one, deterministic from (tenant, payer, "
        "reference)."
    )
    payer_id: str = Field(description="Payer the money is owed to.")
    reference: str = Field(description="The receivable's key at the payer: FCN / ICN / letter reference.")
    rule: str = Field(description="Detection rule (plugin name) that produced the evidence.")
    evidence_channel: EvidenceChannel = Field(
        description="Kind of evidence; signals of different kinds about one reference confirm, not add."
    )
    evidence_amount: Money = Field(description="Amount this piece of evidence shows as overpaid.")
    principal: Money = Field(description="The receivable's principal after merging all evidence so far.")
    determination_date: date = Field(description="Date of the final determination (letter, or remittance).")
    policy: str = Field(
        description="Payer policy plugin that governs interest and recoupment, e.g. `medicare`."
    )
    source: str = Field(description="Where the evidence came from: remittance trace and segment, or letter.")
    claim_references: tuple[str, ...] = Field(default=(), description="Payer claim numbers involved (CLP07).")
    patient_control_numbers: tuple[str, ...] = Field(
        default=(), description="Provider claim numbers (CLP01) involved; a fallback key for matching."
    )
    original_payment_date: date | None = Field(
        default=None, description="When the overpaid payment was made, when the evidence shows it."
    )
    identified_on: date | None = Field(
        default=None,
        description="For evidence of an overpayment the provider identified itself: the identification date "
        "(the 60-day report-and-return deadline of Medicare and Medicaid counts from it).",
    )
    netted_in_remittance: UUID | None = Field(
        default=None,
        description="Remittance whose claim amounts already net the difference (reversal + lower correction); "
        "the overpayment is recovered there unless a negative WO in that remittance defers it.",
    )
    duplicate: bool = Field(default=False, description="The evidence is of a duplicate payment.")
    trace_numbers: tuple[str, ...] = Field(
        default=(), description="TRN02 of the remittances that paid the claims; a fallback key for matching."
    )
    merged_receivables: tuple[UUID, ...] = Field(
        default=(),
        description="Receivables this evidence proved to be the same debt as `receivable_id` (opened before the "
        "link was known, e.g. a deferral citing a letter's FCN before the letter named the claim): each is "
        "merged into `receivable_id` with its recoveries and history, and closed as `merged`. Empty for "
        "evidence that links nothing.",
    )


# --- remit.offsets.v1 ------------------------------------------------------------------------------------------

OffsetBucket = Literal[
    "allocated",
    "unmatched",
    "forwarding_balance",
    "non_offset",
    "deferral",
    "refund_acknowledged",
    "staff_dismissed",
]


class Allocation(Contract):
    """Part of a withheld amount applied to one receivable: interest first, then principal."""

    receivable_id: UUID = Field(description="Receivable reduced.")
    reference: str = Field(description="That receivable's reference.")
    to_interest: Money = Field(description="Amount applied to accrued interest.")
    to_principal: Money = Field(description="Amount applied to principal.")


class OffsetRecorded(Contract):
    """How one PLB pair was explained: every cent lands in exactly one bucket."""

    offset_id: UUID = Field(description="Deterministic id: the PLB pair's event id.")
    remittance_id: UUID = Field(description="Remittance the PLB pair came from.")
    payer_id: str = Field(description="Payer of that remittance.")
    trace_number: str = Field(description="TRN02 of that remittance.")
    payment_date: date = Field(description="BPR16 of that remittance.")
    segment_ordinal: int = Field(description="PLB segment position in its transaction.")
    pair_index: int = Field(description="Pair within the PLB segment (1..6).")
    reason_code: str = Field(description="PLB reason code.")
    reference: str | None = Field(default=None, description="PLB reference, raw.")
    amount: Money = Field(description="The PLB amount, 835 sign.")
    bucket: OffsetBucket = Field(
        description="Where the amount went; `staff_dismissed` (event type `OffsetDismissed`): staff marked the "
        "work-queue item not ours, so what waited leaves the queue (`rematch_of` names the item's offset)."
    )
    allocations: tuple[Allocation, ...] = Field(
        default=(), description="Receivables reduced, when allocated."
    )
    unmatched_amount: Money = Field(description="Part left in the unmatched work queue.")
    reason: str = Field(description="Why: matched reference, unmatched cause, or classification.")
    rematch_of: UUID | None = Field(
        default=None,
        description="For a later re-match of a parked recovery: the `offset_id` of the PLB pair's original "
        "(unmatched) offset; `unmatched_amount` is then what is still unexplained after the re-match. "
        "None for a PLB pair's first explanation.",
    )


# --- remit.receivables.v1 --------------------------------------------------------------------------------------

ReceivableStatus = Literal[
    "open", "partially_recovered", "settled", "paused", "refunded", "written_off", "merged"
]


class DatedRecovery(Contract):
    """What a receivable recovered on one business date, after interest-first splitting in date order."""

    effective_date: date = Field(description="Business date of the recovery (remittance payment date).")
    kind: Literal["offset", "refund", "netting"] = Field(
        description="Withheld by the payer (offset), paid by the provider (refund), or netted in claim amounts."
    )
    to_interest: Money = Field(description="Part that paid accrued interest.")
    to_principal: Money = Field(description="Part that paid principal.")


class ReceivableChanged(Contract):
    """The state of one receivable after a change (opened, increased, reduced, settled, interest added)."""

    receivable_id: UUID = Field(description="Deterministic id of the receivable.")
    payer_id: str = Field(description="Payer owed.")
    reference: str = Field(description="FCN / reference.")
    status: ReceivableStatus = Field(description="Status after this change.")
    policy: str = Field(description="Payer policy plugin name.")
    determination_date: date = Field(description="Final determination date; day 0 of the payer's timeline.")
    effective_date: date = Field(description="Business date of this change (remittance payment date).")
    change_amount: Money = Field(description="Amount of this change (0 for a status-only change).")
    principal: Money = Field(description="Principal owed in total.")
    principal_recovered: Money = Field(description="Principal recovered so far.")
    interest_accrued: Money = Field(description="Interest accrued so far.")
    interest_recovered: Money = Field(description="Interest recovered so far.")
    refunded: Money = Field(
        default=ZERO, description="Part of the recovered amounts paid by provider refund."
    )
    written_off: Money = Field(default=ZERO, description="Amount written off (appeal won, or by staff).")
    paused: bool = Field(
        default=False, description="Recoupment paused by a timely appeal (interest continues)."
    )
    recovery_kind: Literal["offset", "refund", "voluntary"] | None = Field(
        default=None,
        description="For a reduction: withheld by the payer (offset) or paid by the provider (refund).",
    )
    original_payment_date: date | None = Field(
        default=None,
        description="When the payer made the overpaid payment (state look-back limits count from it).",
    )
    identified_on: date | None = Field(
        default=None,
        description="When the provider identified this overpayment itself, if it did (earliest such "
        "evidence): the policy's report-and-return deadline counts from it.",
    )
    duplicate: bool = Field(
        default=False, description="The overpayment is a duplicate payment (NY waives notice)."
    )
    recovery_schedule: tuple[DatedRecovery, ...] | None = Field(
        default=None,
        description="Every recovery so far by business date (interest/principal split in date order); the "
        "interest stage computes outstanding principal from it. None from producers that do not send it.",
    )
    balance: Money = Field(
        description="principal + interest_accrued − recovered − written off (never negative)."
    )
    source: str = Field(description="Document line that caused the change.")


# --- remit.interest.v1 -----------------------------------------------------------------------------------------


class InterestAccrued(Contract):
    """Interest for one full period of an unpaid receivable; one event per (receivable, period)."""

    receivable_id: UUID = Field(description="Receivable charged.")
    payer_id: str = Field(description="Payer owed.")
    reference: str = Field(description="FCN / reference.")
    policy: str = Field(description="Payer policy plugin that computed it.")
    period_number: int = Field(description="1-based period after the grace period.")
    period_start: date = Field(description="First day of the period.")
    period_end: date = Field(description="Last day of the period; the interest is due the day after.")
    principal_basis: Money = Field(description="Outstanding principal the interest was computed on.")
    annual_rate: Rate = Field(description="Annual rate locked at the determination date.")
    amount: Money = Field(
        description="Interest for the period: basis × rate × 30/360, ROUND_HALF_UP; a correction (version ≥ 2) "
        "is the signed difference to what was posted before, so it may be negative."
    )
    version: int = Field(
        default=1, description="1 = the period's charge; 2+ = a correction after a back-dated change."
    )


# --- remit.letters.v1 ------------------------------------------------------------------------------------------


class LetterReceived(Contract):
    """An overpayment the payer demanded by letter, or one the provider identified itself (60-day rule).

    Entered by staff (``offsetstream letter add`` / JSON import); merged by detection with every other signal
    about the same reference into one receivable.
    """

    letter_id: UUID = Field(description="Deterministic id: (tenant, payer, reference, letter date, kind).")
    kind: Literal["demand_letter", "provider_identified"] = Field(
        description="Payer demand letter, or an overpayment the provider found itself."
    )
    payer_id: str = Field(description="Payer owed.")
    payee_id: str = Field(description="Payee (NPI or TIN) the letter is addressed to.")
    reference: str = Field(description="FCN / AR number from the letter (or the provider's own case number).")
    amount: Money = Field(description="Principal demanded or identified.")
    letter_date: date = Field(description="Letter date (final determination) or the date of identification.")
    claim_references: tuple[str, ...] = Field(
        default=(), description="Payer claim numbers (ICN) the letter names."
    )
    entered_by: str = Field(description="Who entered it (staff user id), for the audit trail.")


# --- remit.staff-actions.v1 ------------------------------------------------------------------------------------

StaffActionKind = Literal[
    "appeal_filed", "appeal_decided", "write_off", "refund_sent", "repayment_schedule_granted"
]


class RepaymentSchedule(Contract):
    """The terms of an extended repayment schedule (ERS) as the payer's approval letter states them."""

    installment_amount: Money = Field(description="Amount due at each installment (principal and interest).")
    installments: int = Field(ge=1, le=600, description="Number of installments.")
    first_due_date: date = Field(description="Due date of the first installment.")
    frequency: Literal["monthly", "biweekly", "weekly"] = Field(
        default="monthly",
        description="Installment interval; monthly installments fall on the first due date's day of the month "
        "(the month's last day when it is shorter).",
    )
    final_installment_amount: Money | None = Field(
        default=None, description="Amount of the last installment when it differs (the remainder)."
    )

    @model_validator(mode="after")
    def _positive(self) -> "RepaymentSchedule":
        if self.installment_amount <= 0 or (
            self.final_installment_amount is not None and self.final_installment_amount <= 0
        ):
            raise ValueError("installment amounts must be positive")
        return self


class StaffActionRecorded(Contract):
    """A step staff take on a receivable outside the 835: an appeal, its decision, a write-off, a refund check,
    an extended repayment schedule granted by the payer (event type ``RepaymentScheduleGranted``)."""

    action_id: UUID = Field(
        description="Deterministic id: (tenant, payer, reference, kind, outcome, effective date), plus the "
        "schedule's terms for a repayment schedule."
    )
    kind: StaffActionKind = Field(description="What staff did or learned.")
    payer_id: str = Field(description="Payer of the receivable.")
    payee_id: str = Field(description="Payee (NPI or TIN) of the receivable.")
    reference: str = Field(description="FCN / reference of the receivable.")
    effective_date: date = Field(
        description="Date of the step (filing, decision, check date; the grant date of a repayment schedule)."
    )
    amount: Money | None = Field(
        default=None, description="Amount (refund check, write-off); none for appeals and schedules."
    )
    outcome: Literal["upheld", "overturned"] | None = Field(
        default=None,
        description="For appeal_decided: the overpayment upheld (recovery resumes) or overturned.",
    )
    schedule: RepaymentSchedule | None = Field(
        default=None,
        description="For repayment_schedule_granted (and only for it): the installments granted.",
    )
    entered_by: str = Field(description="Who entered it (staff user id), for the audit trail.")

    @model_validator(mode="after")
    def _schedule_with_its_kind(self) -> "StaffActionRecorded":
        if (self.kind == "repayment_schedule_granted") != (self.schedule is not None):
            raise ValueError("a schedule is given with, and only with, kind repayment_schedule_granted")
        return self


# --- remit.work-items.v1 --------------------------------------------------------------------------------------

WorkItemActionKind = Literal["link", "not_ours", "assign", "note"]
NOTE_MAX_LENGTH = 2000


class WorkItemActionRecorded(Contract):
    """A step staff take on a work-queue item (withheld money no receivable explains yet): link it to a
    receivable, dismiss it as not ours, assign it, or note on it. Matching, which owns the work queue, applies it
    (event types ``WorkItemLinked``, ``WorkItemNotOurs``, ``WorkItemAssigned``, ``WorkItemNoted``).

    ``note`` is free text typed by staff and may hold PHI: consumers store it and show it to staff of the
    tenant only; it is never logged, never copied into other events, notifications or metric labels.
    """

    action_id: UUID = Field(
        description="Deterministic id: (tenant, item, kind, receivable reference / assignee / note, entered_by, "
        "request id); the same submission sent twice is applied once."
    )
    kind: WorkItemActionKind = Field(description="What staff did with the item.")
    item_id: UUID = Field(
        description="The work-queue item: the id of the PLB pair whose money waits (the queue's item id)."
    )
    payer_id: str = Field(description="Payer of the item's remittance.")
    payee_id: str = Field(
        description="Payee (NPI or TIN) of the item's remittance; with tenant and payer the account."
    )
    receivable_reference: str | None = Field(
        default=None,
        description="For link (and only link): reference (FCN) or payer claim number of the receivable, of the "
        "same account, the item's unmatched money is applied to.",
    )
    assignee: str | None = Field(
        default=None, description="For assign: the staff user the item is given to; none unassigns it."
    )
    note: str | None = Field(
        default=None,
        max_length=NOTE_MAX_LENGTH,
        description="For note (and only note): staff's free text. May hold PHI: never logged or forwarded.",
    )
    entered_by: str = Field(description="Who entered it (staff user id), for the audit trail.")
    entered_at: datetime = Field(description="When it was entered (UTC); orders assignments.")

    @model_validator(mode="after")
    def _fields_of_their_kind(self) -> "WorkItemActionRecorded":
        if (self.kind == "link") != bool(self.receivable_reference and self.receivable_reference.strip()):
            raise ValueError("a receivable reference is given with, and only with, kind link")
        if (self.kind == "note") != bool(self.note and self.note.strip()):
            raise ValueError("a note text is given with, and only with, kind note")
        if self.kind != "assign" and self.assignee is not None:
            raise ValueError("an assignee is given only with kind assign")
        return self


WORK_ITEM_EVENT_TYPES: dict[str, str] = {
    "link": "WorkItemLinked",
    "not_ours": "WorkItemNotOurs",
    "assign": "WorkItemAssigned",
    "note": "WorkItemNoted",
}
"""Event type of each work-item action kind."""


# --- remit.alerts.v1 -------------------------------------------------------------------------------------------

AlertKind = Literal[
    "reversal_without_correction",
    "forwarding_balance_not_closed",
    "recoupment_during_pause",
    "recoupment_rule_violation",
    "unmatched_recovery_aging",
    "deferral_without_reference",
]


class AlertRaised(Contract):
    """Something staff must look at that is not itself a money movement (a flag, not a ledger entry)."""

    alert_id: UUID = Field(description="Deterministic id: (subject, kind); raised once per subject and kind.")
    kind: AlertKind = Field(description="What is wrong.")
    payer_id: str = Field(description="Payer concerned.")
    reference: str | None = Field(
        default=None, description="Receivable reference, claim ICN or trace number."
    )
    amount: Money | None = Field(default=None, description="Amount concerned, when there is one.")
    observed_on: date = Field(description="Business date the condition was observed.")
    detail: str = Field(description="What and why, for people; identifiers only, no patient data.")


# --- remit.notifications.v1 ------------------------------------------------------------------------------------


class NotificationEmitted(Contract):
    """A message to staff or downstream systems; identifiers and amounts only, never patient data."""

    notification_id: UUID = Field(
        description="Deterministic id: (causing event, rule); the receiver's idempotency key."
    )
    kind: str = Field(description="Rule that fired, e.g. `receivable_opened`, `offset_applied`.")
    severity: Literal["info", "warning", "action"] = Field(description="How urgently staff should look.")
    summary: str = Field(description="One line for people, without PHI.")
    facts: dict[str, str] = Field(default_factory=dict, description="Identifiers and amounts, as strings.")
    related_event_id: UUID = Field(description="Event that caused the notification.")
