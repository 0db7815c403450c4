"""Matching's pure domain: what a PLB pair means, and how withheld money is applied to a receivable.

Every cent of a PLB pair ends in exactly one bucket: allocated to receivables, unmatched (work queue),
forwarding balance, recovery deferral, refund acknowledgement, or classified non-offset. Money applied to a
receivable goes to accrued interest first, then principal (DOMAIN.md §3).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from contracts.money import ZERO
from contracts.references import ParsedReference, parse_reference
from policies.config import PolicyResolver

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


def read_reference(
    policies: PolicyResolver[Any], tenant: str, payer_id: str, raw: str | None
) -> ParsedReference:
    """A PLB reference read with the layout of the payer policy configured for this tenant's payer — the
    layout detection opened the receivable with, so the recoupment finds the same key. Raises
    ``PolicyConfigError`` when that policy is not installed."""
    return parse_reference(raw, policies.reference_layout(tenant, payer_id))


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
            if reference is None:
                return Meaning(
                    "deferral",
                    "recovery deferred without a reference: identify the overpayment the payer will recover",
                )
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
class Facts:
    """What a piece of overpayment evidence, or the receivable it builds, says beyond the money recovered:
    the figures and dates the interest policies read."""

    principal: Decimal
    determination_date: date
    duplicate: bool
    original_payment_date: date | None
    identified_on: date | None


def evidence_change(known: Facts | None, evidence: Facts) -> str | None:
    """The receivable change a piece of evidence makes: ``ReceivableOpened`` when no receivable is known;
    ``ReceivableIncreased`` when its principal grows or day 0 moves (detection's determination date rule —
    a letter's date when there is one — is the truth, so a letter after the 835 moves day 0); else
    ``ReceivableUpdated`` when it adds a fact the policies read (a duplicate payment, an earlier overpaid
    payment date, an earlier date the provider identified it); None when it adds nothing. Interest and
    notification learn facts only from receivable changes, so every one of these is announced."""
    if known is None:
        return "ReceivableOpened"
    if evidence.principal > known.principal or evidence.determination_date != known.determination_date:
        return "ReceivableIncreased"
    if (
        (evidence.duplicate and not known.duplicate)
        or _earlier(evidence.original_payment_date, known.original_payment_date)
        or _earlier(evidence.identified_on, known.identified_on)
    ):
        return "ReceivableUpdated"
    return None


def _earlier(new: date | None, known: date | None) -> bool:
    """True when ``new`` is a date and moves ``known`` earlier (or is the first one known)."""
    return new is not None and (known is None or new < known)


@dataclass(frozen=True)
class OpenForwarding:
    """A forwarding balance of one account (payer + payee) with money still to apply."""

    reference: str
    open: Decimal
    opened_on: date | None


def forwarding_for(amount: Decimal, balances: list[OpenForwarding]) -> str | None:
    """The forwarding balance a positive ``FB`` applies to when its reference names none (no reference, or
    the payer's payment number instead of the TRN02 the negative ``FB`` used): the account's oldest open
    balance that can still take the whole amount. None when none can: applying part of an amount to a
    balance it does not fit would close the wrong one, so that stays for staff to see."""
    fitting = [b for b in balances if b.open >= amount]
    if not fitting:
        return None
    return min(fitting, key=lambda b: (b.opened_on or date.min, b.reference)).reference


@dataclass(frozen=True)
class Balance:
    """A receivable's running totals; the open balance is derived, never stored on its own.

    ``principal_recovered``/``interest_recovered`` count every recovery (offsets and refunds); ``refunded`` is
    the part of them paid by provider refund, kept to tell a refunded receivable from a recouped one.
    """

    principal: Decimal
    principal_recovered: Decimal = ZERO
    interest_accrued: Decimal = ZERO
    interest_recovered: Decimal = ZERO
    refunded: Decimal = ZERO
    written_off: Decimal = ZERO
    paused: bool = False

    @property
    def interest_open(self) -> Decimal:
        """Accrued interest not yet recovered."""
        return self.interest_accrued - self.interest_recovered

    @property
    def principal_open(self) -> Decimal:
        """Principal not yet recovered nor written off."""
        return self.principal - self.principal_recovered - self.written_off

    @property
    def open(self) -> Decimal:
        """What is still owed."""
        return self.interest_open + self.principal_open

    def recovered(self, application: "Application", *, refund: bool = False) -> "Balance":
        """The balance after applying money (an offset, or a refund when ``refund``)."""
        return replace(
            self,
            principal_recovered=self.principal_recovered + application.to_principal,
            interest_recovered=self.interest_recovered + application.to_interest,
            refunded=self.refunded + (application.applied if refund else ZERO),
        )


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


def apply_recovery(amount: Decimal, balance: Balance, *, interest_first: bool = True) -> Application:
    """Apply money interest first then principal (Medicare; ``interest_first=False`` reverses the order for
    payers whose contract says so); what exceeds the open balance is left over.

    Never more than the open balance as a whole: one part can be negative while the receivable still owes
    (an interest correction reached matching before the charge it corrects, so recoveries hold more interest
    than is charged), and the other part's room alone would then take money nobody owes."""
    taken = min(amount, max(balance.open, ZERO))
    if interest_first:
        to_interest = min(taken, max(balance.interest_open, ZERO))
        to_principal = taken - to_interest
    else:
        to_principal = min(taken, max(balance.principal_open, ZERO))
        to_interest = taken - to_principal
    return Application(to_interest, to_principal, amount - taken)


def status_of(balance: Balance) -> str:
    """Receivable status: open → partially_recovered → settled / refunded / written_off; paused by appeal."""
    if balance.open <= 0:
        if balance.written_off > 0:
            return "written_off"
        offsets = balance.principal_recovered + balance.interest_recovered - balance.refunded
        return "refunded" if balance.refunded > 0 and offsets <= 0 else "settled"
    if balance.paused:
        return "paused"
    if balance.principal_recovered > 0 or balance.interest_recovered > 0:
        return "partially_recovered"
    return "open"


@dataclass(frozen=True)
class Candidate:
    """An open receivable considered for a recovery whose reference resolved to nothing certain."""

    receivable_id: str
    keys: tuple[str, ...]
    open_balance: Decimal
    principal: Decimal
    determination_date: date


def score(candidate: Candidate, amount: Decimal, reference: str | None, paid_on: date) -> float:
    """Confidence (0–1) that a recovery belongs to a receivable: amount, reference likeness, dates.

    Amount equal to the open balance is the strongest sign payers give; a reference sharing a long digit run
    with one of the receivable's claim numbers is the next; a determination after the payment rules it out.
    """
    points = 0.0
    if amount == candidate.open_balance:
        points += 0.5
    elif amount == candidate.principal:
        points += 0.4
    elif amount < candidate.open_balance:
        points += 0.1
    ref = "".join(ch for ch in (reference or "") if ch.isalnum())
    if ref and len(ref) >= 6 and any(ref in key or key in ref for key in candidate.keys if len(key) >= 6):
        points += 0.35
    elif ref and any(_common_suffix(ref, key) >= 6 for key in candidate.keys):
        points += 0.2
    if candidate.determination_date <= paid_on:
        points += 0.15 if (paid_on - candidate.determination_date).days <= 365 else 0.05
    else:
        points -= 0.5
    return max(0.0, min(points, 1.0))


def _common_suffix(a: str, b: str) -> int:
    count = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        count += 1
    return count


def best_candidate(
    candidates: list[Candidate], amount: Decimal, reference: str | None, paid_on: date, threshold: float
) -> tuple[Candidate | None, float, Candidate | None]:
    """(candidate to auto-apply or None, best score, best candidate as a suggestion).

    Auto-applies only when the best score reaches the threshold *and* clearly beats the runner-up: two
    receivables of the same amount are a question for staff, not a coin toss.
    """
    ranked = sorted(
        ((score(c, amount, reference, paid_on), c) for c in candidates),
        key=lambda pair: (-pair[0], pair[1].determination_date, pair[1].receivable_id),
    )
    if not ranked:
        return None, 0.0, None
    best_score, best = ranked[0]
    runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
    if best_score >= threshold and best_score - runner_up >= 0.1:
        return best, best_score, best
    return None, best_score, best


def oldest_first(
    amount: Decimal, balances: list[tuple[str, Balance]], *, interest_first: bool = True
) -> tuple[list[tuple[str, Application]], Decimal]:
    """Spread one lump withholding over several receivables, oldest first; return applications and remainder."""
    applied: list[tuple[str, Application]] = []
    left = amount
    for rid, balance in balances:
        if left <= 0:
            break
        if balance.open <= 0:
            continue
        application = apply_recovery(left, balance, interest_first=interest_first)
        applied.append((rid, application))
        left = application.remainder
    return applied, left


@dataclass(frozen=True)
class PeriodPosting:
    """One interest posting of a receivable's period as matching keeps it (the charge, or a signed correction
    of it); ``held`` while it does not count."""

    event_id: UUID
    amount: Decimal
    held: bool


@dataclass(frozen=True)
class PeriodCount:
    """What an interest period's postings count for now: whether they count at all, the postings whose
    ``held`` flips, and by how much the receivable's counted interest changes."""

    counts: bool
    flipped: tuple[PeriodPosting, ...]
    change: Decimal


def period_count(postings: Sequence[PeriodPosting]) -> PeriodCount:
    """How an interest period's postings count: all of them while they sum to zero or more, none while they
    sum below zero.

    A period's interest is never negative. Its postings sum below zero only while a correction has overtaken
    the charge it corrects (the interest stage publishes its timer's postings through its outbox and its
    handler's straight after the commit, so one can pass the other): counted alone, the correction would
    push recoveries back to the work queue for a moment, and the charge's arrival would re-match them as
    new allocations. Held, the period counts for nothing until the charge arrives, whatever the order."""
    total = sum((p.amount for p in postings), ZERO)
    counts = total >= 0
    counted_before = sum((p.amount for p in postings if not p.held), ZERO)
    flipped = tuple(p for p in postings if p.held == counts)
    return PeriodCount(counts, flipped, (total if counts else ZERO) - counted_before)


@dataclass(frozen=True)
class Dated:
    """A money movement on a receivable with its business date: an interest charge or a recovery."""

    key: str
    day: date
    amount: Decimal
    rank: str = ""
    """Its place among the movements of its day (recoveries: netting, then PLB pairs by TRN02 and position,
    then staff's money), so same-day recoveries split the same whatever order they arrived in."""


def split_in_date_order(
    charges: list[Dated], recoveries: list[Dated], principal: Decimal, *, interest_first: bool = True
) -> dict[str, tuple[Decimal, Decimal]]:
    """Interest/principal split of every recovery, judged by what was due on each recovery's own date.

    Walks business dates: charges due on a day come before recoveries of that day. The result depends only on
    the dates and amounts, never on the order in which events arrived, so a late file, a replay or an interest
    tick that ran ahead of a backlog all end in the same split. Returns key → (to_interest, to_principal).
    """
    events = sorted(
        [(c.day, 0, c.rank, c.key, c.amount) for c in charges]
        + [(r.day, 1, r.rank, r.key, r.amount) for r in recoveries]
    )
    interest_open = ZERO
    principal_open = principal
    split: dict[str, tuple[Decimal, Decimal]] = {}
    for _, kind, _, key, amount in events:
        if kind == 0:
            interest_open += amount
            continue
        if interest_first:
            to_interest = min(amount, max(interest_open, ZERO))
            to_principal = min(amount - to_interest, max(principal_open, ZERO))
        else:
            to_principal = min(amount, max(principal_open, ZERO))
            to_interest = min(amount - to_principal, max(interest_open, ZERO))
        to_interest += (
            amount - to_interest - to_principal
        )  # beyond both: the payer took too much; keep it visible
        interest_open -= to_interest
        principal_open -= to_principal
        split[key] = (to_interest, to_principal)
    return split


def refund_pair_nets(wo_amount: Decimal, returns: Sequence[Decimal]) -> bool:
    """Whether a positive WO and the 72s on its reference in the same remittance net to zero: the payer
    acknowledging the provider's refund check (DOMAIN.md §2), not withholding money."""
    return wo_amount > 0 and wo_amount + sum(returns, ZERO) == 0
