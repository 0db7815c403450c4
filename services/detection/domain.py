"""Detection's pure domain: evidence of overpayments, and how evidence merges into one receivable.

Several signals often describe the same overpayment (a reversal/correction pair, then the payer's negative WO
deferring it, then the demand letter). Signals of *different* channels confirm each other; signals of the *same*
channel add up (two deferrals under one reference are two debts). So the receivable's principal is the largest
per-channel sum — a rule that is commutative, hence independent of arrival order and replay.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from contracts.events import ClaimPaymentReceived, EvidenceChannel, ProviderAdjustmentReceived
from contracts.money import ZERO

REVERSAL_STATUS = "22"


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence that money is owed back under ``reference``."""

    evidence_id: UUID
    rule: str
    channel: EvidenceChannel
    reference: str
    amount: Decimal
    evidence_date: date
    source: str
    claim_references: tuple[str, ...] = ()


class DetectionRule(Protocol):
    """A detection rule plugin (entry-point group ``offsetstream.detection_rules``). Pure: no I/O.

    ``prior`` is the account's earlier claims sharing this claim's CLP01, CLP07 or REF*F8, oldest first.
    """

    name: str

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Evidence found when a claim payment arrives."""
        ...

    def on_adjustment(self, adjustment: ProviderAdjustmentReceived) -> list[Evidence]:
        """Evidence found when a PLB pair arrives."""
        ...


def merged_principal(evidence: Iterable[tuple[str, Decimal]]) -> Decimal:
    """Principal of a receivable from (channel, amount) pairs: the largest per-channel sum."""
    per_channel: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for channel, amount in evidence:
        per_channel[channel] += amount
    return max(per_channel.values(), default=ZERO)


def determination_date(evidence: Iterable[tuple[str, date]]) -> date:
    """Day 0 of the payer's timeline: a letter's date when there is one, else the earliest evidence."""
    items = list(evidence)
    letters = [d for channel, d in items if channel == "letter"]
    return min(letters) if letters else min(d for _, d in items)
