"""Built-in detection rules, registered as plugins in pyproject.toml exactly like third-party rules."""

import csv
from collections import defaultdict
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from contracts.events import (
    ClaimPaymentReceived,
    EvidenceChannel,
    LetterReceived,
    ProviderAdjustmentReceived,
    ServicePayment,
)
from contracts.money import ZERO, to_money
from contracts.references import DEFAULT_LAYOUT, ReferenceLayout, receivable_reference
from services.detection.domain import (
    REVERSAL_STATUS,
    DetectionRule,
    Evidence,
    live_payments,
    pending_reversal,
)
from shared.ids import stable_id
from shared.settings import get_settings

DUPLICATE_CARCS = {"18", "B13"}


def _claim_reference(claim: ClaimPaymentReceived) -> str:
    """Receivable key of a claim-level overpayment: the payer's ICN, else the provider's claim number."""
    return claim.payer_claim_control_number or claim.patient_control_number


def _claim_evidence(
    rule: str,
    claim: ClaimPaymentReceived,
    reference: str,
    amount: Decimal,
    claim_refs: tuple[str, ...] = (),
    paid_on: date | None = None,
) -> Evidence:
    return Evidence(
        evidence_id=stable_id(claim.remittance_id, "claim", claim.claim_ordinal, rule),
        rule=rule,
        channel="claim",
        subject=f"claim:{claim.remittance_id}:{claim.claim_ordinal}",
        reference=reference,
        amount=to_money(amount),
        evidence_date=claim.payment_date,
        source=f"TRN {claim.trace_number} CLP #{claim.segment_ordinal}",
        claim_references=claim_refs or tuple(r for r in (claim.payer_claim_control_number,) if r),
        patient_control_numbers=(claim.patient_control_number,),
        trace_numbers=(claim.trace_number,),
        original_payment_date=paid_on or claim.payment_date,
    )


class DeferredRecoveryRule(DetectionRule):
    """A negative ``WO``: the payer determined an overpayment but defers recovering it, adding the money back
    now; the reference names the receivable (FCN). The later positive ``WO`` is matching's business."""

    name = "deferred_recovery"

    def on_adjustment(
        self, adjustment: ProviderAdjustmentReceived, layout: ReferenceLayout = DEFAULT_LAYOUT
    ) -> list[Evidence]:
        """Negative WO with a reference opens (or confirms) the receivable, keyed by the FCN the layout reads."""
        reference = receivable_reference(adjustment.reference, layout)
        if adjustment.reason_code != "WO" or adjustment.amount >= 0 or reference is None:
            return []
        pair = f"{adjustment.remittance_id}:{adjustment.segment_ordinal}:{adjustment.pair_index}"
        return [
            Evidence(
                evidence_id=stable_id(
                    adjustment.remittance_id,
                    "plb",
                    adjustment.segment_ordinal,
                    adjustment.pair_index,
                    self.name,
                ),
                rule=self.name,
                channel="deferral",
                subject=f"plb:{pair}",
                reference=reference,
                amount=-adjustment.amount,
                evidence_date=adjustment.payment_date,
                source=f"TRN {adjustment.trace_number} PLB #{adjustment.segment_ordinal} pair {adjustment.pair_index}",
            )
        ]


class ReversalCorrectionRule(DetectionRule):
    """``CLP02=22`` reverses an earlier payment; the correction that follows (same CLP01, or REF*F8 naming the
    original ICN, in the same or a later remittance) pays less: the difference is an overpayment keyed by the
    original ICN — the reference Medicare uses when it defers the recovery with a negative ``WO``."""

    name = "reversal_correction"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Pair a correction with the latest reversal no later payment has paired."""
        if claim.status_code == REVERSAL_STATUS:
            return []
        reversal = pending_reversal(prior)
        if reversal is None:
            return []
        reference = reversal.payer_claim_control_number or claim.original_reference
        overpaid = -reversal.paid - claim.paid
        if reference is None or overpaid <= 0:
            return []
        refs = tuple(r for r in (reversal.payer_claim_control_number, claim.payer_claim_control_number) if r)
        originals = [
            p for p in prior if p.status_code != REVERSAL_STATUS and p.payment_date <= reversal.payment_date
        ]
        paid_on = originals[-1].payment_date if originals else reversal.payment_date
        evidence = _claim_evidence(self.name, claim, reference, overpaid, refs, paid_on=paid_on)
        return [replace(evidence, netted_in_remittance=claim.remittance_id)]


def paid_on_flagged_duplicates(claim: ClaimPaymentReceived) -> Decimal:
    """Money the payer paid on the claim or service line that a CARC 18 (exact duplicate) / B13 (previously
    paid) sits on: the part of this payment the payer itself says it had paid before.

    A CAS 18/B13 usually *denies* the duplicate: one line adjusted CO-18 and paid 0 while the other lines are
    paid is the payer refusing to pay twice, not an overpayment. Only money still paid on what the CARC flags
    is owed back. At claim level that is the claim's payment. At service level the contract lists the CAS
    without its line, so a flag is attributed to the lines that can carry it (adjusted by at least its
    amount) and counts the least any of them was paid; several flags count the largest such amount, never
    their sum. That is conservative on purpose: a receivable is opened only for money surely paid twice.
    """
    flags = [a for a in claim.adjustments if a.reason_code in DUPLICATE_CARCS]
    if not flags:
        return ZERO
    if any(a.level == "claim" for a in flags):
        return max(claim.paid, ZERO)
    if not claim.services:
        return ZERO
    owed = ZERO
    for flag in flags:
        carriers = [s for s in claim.services if s.charge - s.paid >= flag.amount] or list(claim.services)
        owed = max(owed, min(s.paid for s in carriers))
    return min(owed, claim.paid)


class DuplicatePaymentRule(DetectionRule):
    """The same claim paid twice: same CLP01/CLP07, same service dates, same amount, the first payment not
    reversed since (DOMAIN.md); or money paid on a claim or line the payer flags with CARC 18 / B13 (see
    :func:`paid_on_flagged_duplicates`)."""

    name = "duplicate_payment"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """The whole second payment is owed back; without an earlier payment, what was paid on the flagged
        claim or line."""
        if claim.status_code == REVERSAL_STATUS or claim.paid <= 0:
            return []
        twins = [p for p in live_payments(prior) if self._same_payment(p, claim)]
        owed = claim.paid if twins else paid_on_flagged_duplicates(claim)
        if owed <= 0:
            return []
        refs = tuple(
            r for r in (*(t.payer_claim_control_number for t in twins), claim.payer_claim_control_number) if r
        )
        return [_claim_evidence(self.name, claim, _claim_reference(claim), owed, refs)]

    def on_claim_arriving_late(
        self, claim: ClaimPaymentReceived, later: list[ClaimPaymentReceived]
    ) -> list[Evidence]:
        """The first payment arrived after its duplicate: flag the later one, exactly as in order."""
        if claim.status_code == REVERSAL_STATUS or claim.paid <= 0:
            return []
        found = []
        for index, second in enumerate(later):
            if second.status_code == REVERSAL_STATUS or not self._same_payment(claim, second):
                continue
            if claim not in live_payments([claim, *later[:index]]):
                continue  # the first payment was reversed before the second: not a duplicate
            refs = tuple(
                r for r in (claim.payer_claim_control_number, second.payer_claim_control_number) if r
            )
            found.append(_claim_evidence(self.name, second, _claim_reference(second), second.paid, refs))
        return found

    @staticmethod
    def _same_payment(a: ClaimPaymentReceived, b: ClaimPaymentReceived) -> bool:
        return a.paid == b.paid and (a.service_date_from, a.service_date_to) == (
            b.service_date_from,
            b.service_date_to,
        )


class PaidAboveChargeRule(DetectionRule):
    """A payer never owes more than the provider charged: the excess is an overpayment."""

    name = "paid_above_charge"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Paid minus charge, when positive, on a non-reversal claim."""
        if claim.status_code == REVERSAL_STATUS or claim.paid <= claim.charge:
            return []
        return [_claim_evidence(self.name, claim, _claim_reference(claim), claim.paid - claim.charge)]


class FeeSchedule:
    """Per-payer allowed amounts by procedure code (+ modifier) and effective dates, from a CSV file."""

    def __init__(self, rows: list[tuple[str, str, str, Decimal, date, date | None]]) -> None:
        self._entries: dict[tuple[str, str, str], list[tuple[date, date | None, Decimal]]] = defaultdict(list)
        for payer, code, modifier, allowed, start, end in rows:
            self._entries[payer, code, modifier].append((start, end, allowed))

    @classmethod
    def from_csv(cls, path: Path) -> "FeeSchedule":
        """Read ``payer_id,procedure_code,modifier,allowed_amount,effective_from,effective_to``."""
        with path.open(newline="") as handle:
            rows = [
                (
                    r["payer_id"],
                    r["procedure_code"],
                    r.get("modifier") or "",
                    to_money(r["allowed_amount"]),
                    date.fromisoformat(r["effective_from"]),
                    date.fromisoformat(r["effective_to"]) if r.get("effective_to") else None,
                )
                for r in csv.DictReader(handle)
            ]
        return cls(rows)

    def allowed(self, payer: str, line: ServicePayment, on: date) -> Decimal | None:
        """Scheduled amount per unit on a date (modifier-specific entry first), or None when unscheduled."""
        modifier = line.modifiers[0] if line.modifiers else ""
        for key in ((payer, line.procedure_code, modifier), (payer, line.procedure_code, "")):
            for start, end, amount in self._entries.get(key, []):
                if start <= on and (end is None or on <= end):
                    return amount
        return None


class FeeScheduleRule(DetectionRule):
    """A line paid above its contracted amount (allowed × units) by more than the tolerance.

    Compares the payer's *paid* amount with the full allowed amount, so a line that is flagged is overpaid
    even before counting the patient's share: conservative on purpose, no false alarms from deductibles.
    """

    name = "fee_schedule"

    def __init__(self, schedule: FeeSchedule | None = None, tolerance: Decimal | None = None) -> None:
        settings = get_settings()
        path = settings.fee_schedule_path
        self.schedule = schedule or (FeeSchedule.from_csv(path) if path else None)
        self.tolerance = settings.fee_schedule_tolerance if tolerance is None else tolerance

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Sum of line excesses over the schedule."""
        if self.schedule is None or claim.status_code == REVERSAL_STATUS:
            return []
        excess = ZERO
        for line in claim.services:
            on = line.service_date or claim.service_date_from or claim.payment_date
            allowed = self.schedule.allowed(claim.payer_id, line, on)
            if allowed is None:
                continue
            expected = to_money(allowed * (line.units or Decimal(1)))
            if line.paid - expected > self.tolerance:
                excess += line.paid - expected
        if excess <= 0:
            return []
        return [_claim_evidence(self.name, claim, _claim_reference(claim), excess)]


class LetterRule(DetectionRule):
    """A demand letter (its date is the final determination date) or a provider-identified overpayment."""

    name = "letters"

    def on_letter(self, letter: LetterReceived) -> list[Evidence]:
        """The letter's amount under its FCN."""
        channel: EvidenceChannel = "letter" if letter.kind == "demand_letter" else "provider_identified"
        return [
            Evidence(
                evidence_id=stable_id(letter.letter_id, self.name),
                rule=letter.kind,
                channel=channel,
                subject=f"letter:{letter.letter_id}",
                reference=letter.reference.strip(),
                amount=letter.amount,
                evidence_date=letter.letter_date,
                source=f"{letter.kind.replace('_', ' ')} {letter.letter_date}",
                claim_references=letter.claim_references,
            )
        ]
