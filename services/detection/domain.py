"""Detection's pure domain: evidence of overpayments, and how evidence merges into one receivable.

Several signals often describe the same overpayment (a reversal/correction pair, then the payer's negative WO
deferring it, then the demand letter). Signals of *different* channels confirm each other; within a channel,
signals about the same *subject* (one claim flagged by two rules) are one overpayment, and different subjects
add up (two deferrals under one reference are two debts). So the principal is the largest per-channel sum of
per-subject maxima — commutative, hence independent of arrival order and replay.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import ClaimPaymentReceived, EvidenceChannel, LetterReceived, ProviderAdjustmentReceived
from contracts.money import ZERO
from contracts.references import DEFAULT_LAYOUT, ReferenceLayout

REVERSAL_STATUS = "22"


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence that money is owed back under ``reference``."""

    evidence_id: UUID
    rule: str
    channel: EvidenceChannel
    subject: str
    reference: str
    amount: Decimal
    evidence_date: date
    source: str
    claim_references: tuple[str, ...] = ()
    patient_control_numbers: tuple[str, ...] = ()
    trace_numbers: tuple[str, ...] = ()
    original_payment_date: date | None = None
    netted_in_remittance: UUID | None = None


class DetectionRule:
    """Base of detection rule plugins (entry-point group ``offsetstream.detection_rules``). Pure: no I/O.

    Override the hooks a rule cares about; the others find nothing. ``prior`` is the account's earlier claims
    sharing this claim's CLP01, CLP07 or REF*F8, oldest first. A rule that raises is isolated by the service
    (the message is dead-lettered with reason ``plugin_error``), never crashing the worker.
    """

    name = "rule"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Evidence found when a claim payment arrives."""
        return []

    def on_claim_arriving_late(
        self, claim: ClaimPaymentReceived, later: list[ClaimPaymentReceived]
    ) -> list[Evidence]:
        """Evidence about claims already seen (``later``: dated after this one) that this earlier-dated claim,
        arriving late, reveals. Files of one account may be processed in any order; a rule whose finding depends
        on order implements this so both orders find the same evidence (with the same deterministic ids)."""
        return []

    def on_adjustment(
        self, adjustment: ProviderAdjustmentReceived, layout: ReferenceLayout = DEFAULT_LAYOUT
    ) -> list[Evidence]:
        """Evidence found when a PLB pair arrives. ``layout`` is how this tenant's payer lays out its PLB
        references (its configured payer policy's): read a reference with it so detection and matching key
        the same overpayment the same way."""
        return []

    def on_letter(self, letter: LetterReceived) -> list[Evidence]:
        """Evidence found when staff enter a letter or a provider-identified overpayment."""
        return []


def merged_principal(evidence: Iterable[tuple[str, str, Decimal]]) -> Decimal:
    """Principal from (channel, subject, amount): max over channels of the sum over subjects of the max."""
    per_subject: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for channel, subject, amount in evidence:
        per_subject[channel, subject] = max(per_subject[channel, subject], amount)
    per_channel: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (channel, _), amount in per_subject.items():
        per_channel[channel] += amount
    return max(per_channel.values(), default=ZERO)


def determination_date(evidence: Iterable[tuple[str, date]]) -> date:
    """Day 0 of the payer's timeline: a letter's date when there is one, else the earliest evidence."""
    items = list(evidence)
    letters = [d for channel, d in items if channel == "letter"]
    return min(letters) if letters else min(d for _, d in items)


def live_payments(prior: list[ClaimPaymentReceived]) -> list[ClaimPaymentReceived]:
    """Earlier payments of a claim that no later reversal took back (a reversal cancels the latest payment
    with the same ICN, else the latest with the negated amount)."""
    live: list[ClaimPaymentReceived] = []
    for claim in prior:
        if claim.status_code != REVERSAL_STATUS:
            live.append(claim)
            continue
        for index in range(len(live) - 1, -1, -1):
            same_icn = claim.payer_claim_control_number and (
                live[index].payer_claim_control_number == claim.payer_claim_control_number
            )
            if same_icn or live[index].paid == -claim.paid:
                del live[index]
                break
    return live


def pending_reversal(prior: list[ClaimPaymentReceived]) -> ClaimPaymentReceived | None:
    """The latest reversal that no later payment has paired (the one a correction now pairs with)."""
    pending: ClaimPaymentReceived | None = None
    for earlier in prior:
        pending = earlier if earlier.status_code == REVERSAL_STATUS else None
    return pending


def identity_keys(ev: Evidence) -> tuple[str, ...]:
    """The identifiers by which this evidence names its debt: the reference the payer (or letter) cited and the
    payer claim numbers involved, plus the 13-digit ICN inside a 15-digit FCN (some contractors prefix it).

    Patient control numbers and trace numbers are deliberately not identifiers of a debt: one patient account
    or one payment covers many claims, so linking by them would merge different overpayments.
    """
    keys: list[str] = []
    for raw in (ev.reference, *ev.claim_references):
        text = raw.strip()
        for form in (text, text[-13:] if len(text) == 15 and text.isdigit() else ""):
            if form and form not in keys:
                keys.append(form)
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class KnownReceivable:
    """A receivable detection already opened, as far as choosing a merge survivor needs it."""

    receivable_id: UUID
    reference: str
    determination_date: date


def survivor(owners: Iterable[KnownReceivable]) -> KnownReceivable:
    """Of several receivables one piece of evidence proves to be one debt, the one that lives on: the oldest
    determination (its day 0 is the debt's), then the reference, so the choice depends on the receivables
    alone, not on which message linked them."""
    return min(owners, key=lambda r: (r.determination_date, r.reference, str(r.receivable_id)))


@dataclass(frozen=True, slots=True)
class KnownEvidence:
    """Evidence already recorded for a receivable, as far as merging its principal and day 0 needs it."""

    channel: str
    subject: str
    amount: Decimal
    evidence_date: date


@dataclass(frozen=True, slots=True)
class PendingReversal:
    """A claim reversal (CLP02 = 22) no correction has paired yet: what the reversal check alerts about."""

    tenant_id: str
    claim_event_id: UUID
    account_key: str
    payer_id: str
    icn: str | None
    amount: Decimal
    reversed_on: date
