"""Matching's pure domain: what a PLB pair means, and how withheld money is applied to a receivable.

Every cent of a PLB pair ends in exactly one bucket: allocated to receivables, unmatched (work queue),
forwarding balance, recovery deferral, refund acknowledgement, or classified non-offset. Money applied to a
receivable goes to accrued interest first, then principal (DOMAIN.md §3).
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from contracts.money import ZERO

Action = Literal[
    "recover", "deferral", "forwarding_open", "forwarding_apply", "refund", "review", "non_offset"
]

NEEDS_REVIEW = {
    "WU": "unspecified recovery: the payer did not say which overpayment it recovered",
    "OB": "offset for an affiliated provider: recovered here for a sibling payee under the same TIN",
    "TL": "third-party liability recovery: the source claim must be identified",
}

NON_OFFSET = {
    "L6": "interest owed by the payer to the provider",
    "50": "late charge",
    "51": "interest penalty charge",
    "L3": "penalty",
    "IR": "IRS withholding (garnishment, not a billing debt)",
    "LE": "levy (garnishment, not a billing debt)",
    "SL": "student loan repayment (garnishment, not a billing debt)",
    "CS": "payer-specific adjustment",
    "J1": "nonreimbursable",
    "CR": "capitation interest",
    "C5": "temporary allowance",
    "AP": "acceleration of benefits",
    "RA": "retro-activity adjustment",
    "PI": "periodic interim payment",
    "E3": "withholding",
}


@dataclass(frozen=True)
class Meaning:
    """What to do with one PLB pair and why, in words a billing specialist uses."""

    action: Action
    reason: str


def classify(reason_code: str, amount: Decimal, reference: str | None) -> Meaning:
    """Read a PLB pair by its reason code and sign (positive = withheld from this payment)."""
    if reason_code == "WO":
        if amount > 0:
            if reference is None:
                return Meaning("review", "overpayment recovery without a reference")
            return Meaning("recover", f"overpayment recovery against {reference}")
        if amount < 0:
            return Meaning("deferral", "recovery deferred: receivable opened by detection")
        return Meaning("non_offset", "zero-amount WO")
    if reason_code == "FB":
        if amount < 0:
            return Meaning("forwarding_open", "balance carried forward to a later remittance")
        return Meaning("forwarding_apply", "earlier forwarding balance applied")
    if reason_code == "72":
        return Meaning("refund", "authorized return: provider refund acknowledged, not new cash")
    if reason_code in NEEDS_REVIEW:
        if amount > 0:
            return Meaning("review", NEEDS_REVIEW[reason_code])
        return Meaning("non_offset", f"negative {reason_code}: money returned to the provider")
    return Meaning("non_offset", NON_OFFSET.get(reason_code, f"PLB code {reason_code}: no offset meaning"))


@dataclass(frozen=True)
class Balance:
    """A receivable's running totals; the open balance is derived, never stored on its own."""

    principal: Decimal
    principal_recovered: Decimal = ZERO
    interest_accrued: Decimal = ZERO
    interest_recovered: Decimal = ZERO

    @property
    def interest_open(self) -> Decimal:
        """Accrued interest not yet recovered."""
        return self.interest_accrued - self.interest_recovered

    @property
    def principal_open(self) -> Decimal:
        """Principal not yet recovered."""
        return self.principal - self.principal_recovered

    @property
    def open(self) -> Decimal:
        """What is still owed."""
        return self.interest_open + self.principal_open


@dataclass(frozen=True)
class Application:
    """Result of applying money to one receivable."""

    to_interest: Decimal
    to_principal: Decimal
    remainder: Decimal

    @property
    def applied(self) -> Decimal:
        """Total applied to the receivable."""
        return self.to_interest + self.to_principal


def apply_recovery(amount: Decimal, balance: Balance) -> Application:
    """Apply withheld money interest first, then principal; what exceeds the open balance is left over."""
    to_interest = min(amount, max(balance.interest_open, ZERO))
    to_principal = min(amount - to_interest, max(balance.principal_open, ZERO))
    return Application(to_interest, to_principal, amount - to_interest - to_principal)


def status_of(balance: Balance) -> str:
    """Receivable status derived from its balance."""
    if balance.open <= 0:
        return "settled"
    if balance.principal_recovered > 0 or balance.interest_recovered > 0:
        return "partially_recovered"
    return "open"
