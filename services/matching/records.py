"""What matching's repository hands the engine: frozen rows of its tables as plain values.

The engine never sees an ``asyncpg.Record``: :mod:`services.matching.store` maps each row to one of these at
the repository boundary, and :mod:`services.matching.memory` keeps them in dictionaries for unit tests.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import ProviderAdjustmentReceived
from services.matching.domain import Balance, Facts


@dataclass(frozen=True)
class Receivable:
    """One overpayment owed back to the payer (``matching.receivables``), as last stored."""

    tenant_id: str
    receivable_id: UUID
    account_key: str
    payer_id: str
    reference: str
    policy: str
    determination_date: date
    principal: Decimal
    principal_recovered: Decimal
    interest_accrued: Decimal
    interest_recovered: Decimal
    refunded: Decimal
    written_off: Decimal
    paused: bool
    status: str
    original_payment_date: date | None
    duplicate: bool
    identified_on: date | None
    merged_into: UUID | None
    merged_on: date | None
    written_off_in_full: date | None

    @property
    def balance(self) -> Balance:
        """The domain view of the receivable's running totals."""
        return Balance(
            self.principal,
            self.principal_recovered,
            self.interest_accrued,
            self.interest_recovered,
            self.refunded,
            self.written_off,
            self.paused,
        )

    @property
    def facts(self) -> Facts:
        """What the receivable's evidence said so far, as the next evidence is compared with."""
        return Facts(
            self.principal,
            self.determination_date,
            self.duplicate,
            self.original_payment_date,
            self.identified_on,
        )


@dataclass(frozen=True)
class StoredPair:
    """A PLB pair as matching recorded it (``matching.adjustments``) with the bucket its money went to."""

    tenant_id: str
    adjustment_id: UUID
    account_key: str
    remittance_id: UUID
    payer_id: str
    trace_number: str
    payment_date: date
    segment_ordinal: int
    pair_index: int
    reason_code: str
    reference: str | None
    match_reference: str | None
    amount: Decimal
    bucket: str
    unmatched_amount: Decimal
    reason: str
    match_keys: tuple[str, ...]
    match_method: str | None
    suggestion: str | None
    awaiting_refund: Decimal

    @property
    def place(self) -> tuple[str, int, int]:
        """Where the pair sits in its remittance (TRN02, PLB position, pair index): its recoveries' rank among
        those of one business date."""
        return (self.trace_number, self.segment_ordinal, self.pair_index)

    def as_adjustment(self) -> ProviderAdjustmentReceived:
        """The stored pair as the contract object its later re-explanation is announced with (the PLB's
        provider identifier and fiscal period are not kept: no consumer of a re-match reads them)."""
        return ProviderAdjustmentReceived(
            remittance_id=self.remittance_id,
            payer_id=self.payer_id,
            trace_number=self.trace_number,
            payment_date=self.payment_date,
            segment_ordinal=self.segment_ordinal,
            pair_index=self.pair_index,
            provider_identifier="",
            fiscal_period_date=self.payment_date,
            reason_code=self.reason_code,
            reference=self.reference,
            amount=self.amount,
        )


@dataclass(frozen=True)
class Displaced:
    """A recovery (recoupment or acknowledged refund) that gave way to earlier-dated money: its pair after the
    change, and how much moved back to its unmatched (or awaiting-refund) amount."""

    pair: StoredPair
    displaced: Decimal
    refund: bool = False
    """The money was a refund acknowledged (72 + WO): it went back to the pair's ``awaiting_refund``, never
    to the work queue."""
    receivable_id: UUID | None = None
    """The receivable the money was taken from (set where the caller does not know it)."""


@dataclass(frozen=True)
class RecordedRefund:
    """A refund check staff recorded on a receivable that no payer PLB pair has acknowledged yet."""

    allocation_id: UUID
    receivable_id: UUID
    to_interest: Decimal
    to_principal: Decimal
    effective_date: date


@dataclass(frozen=True)
class ForwardingBalance:
    """A forwarding balance of one account, keyed by the reference its negative ``FB`` used."""

    reference: str
    opened_amount: Decimal
    applied_amount: Decimal
    opened_on: date | None

    @property
    def open(self) -> Decimal:
        """Money carried forward not applied yet."""
        return self.opened_amount - self.applied_amount


@dataclass(frozen=True)
class ForwardingApplication:
    """A positive ``FB`` pair of an account: what it applies (``amount``), the balance its own reference names
    (``named``, stripped; None without one), the balance it is applied to now (``match_reference``), and where
    it sits in business-date order (payment date, then TRN02 and PLB position: a total order that does not
    depend on arrival)."""

    adjustment_id: UUID
    amount: Decimal
    match_reference: str | None
    named: str | None
    payment_date: date
    trace_number: str
    segment_ordinal: int
    pair_index: int

    @property
    def position(self) -> tuple[date, str, int, int, str]:
        """The pair's place in business-date order (the id last, only to make the order total)."""
        return (
            self.payment_date,
            self.trace_number,
            self.segment_ordinal,
            self.pair_index,
            str(self.adjustment_id),
        )


@dataclass(frozen=True)
class RefundCredit:
    """The part of a refund check above the balance known on its date, kept to pay interest charged later."""

    action_id: UUID
    receivable_id: UUID
    effective_date: date
    amount: Decimal


@dataclass(frozen=True)
class ScheduledRecovery:
    """A receivable's recoveries of one kind summed on one business date."""

    kind: str
    effective_date: date
    to_interest: Decimal
    to_principal: Decimal


@dataclass(frozen=True)
class RecoveredTotals:
    """The sums a receivable's stored totals are derived from."""

    principal_recovered: Decimal
    interest_recovered: Decimal
    refunded: Decimal
    interest_accrued: Decimal
