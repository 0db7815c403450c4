"""Built-in detection rules, registered as plugins in pyproject.toml like any third-party rule."""

from contracts.events import ClaimPaymentReceived, ProviderAdjustmentReceived
from services.detection.domain import REVERSAL_STATUS, Evidence
from shared.ids import stable_id
from shared.references import receivable_reference


class DeferredRecoveryRule:
    """A negative ``WO`` (or ``FB`` used the same way is left to matching): the payer defers recovery of an
    overpayment it has determined, adding the money back now; the reference names the receivable (FCN)."""

    name = "deferred_recovery"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Claims carry no deferral."""
        return []

    def on_adjustment(self, adjustment: ProviderAdjustmentReceived) -> list[Evidence]:
        """Negative WO with a reference opens (or confirms) the receivable."""
        reference = receivable_reference(adjustment.reference)
        if adjustment.reason_code != "WO" or adjustment.amount >= 0 or reference is None:
            return []
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
                reference=reference,
                amount=-adjustment.amount,
                evidence_date=adjustment.payment_date,
                source=f"TRN {adjustment.trace_number} PLB #{adjustment.segment_ordinal} pair {adjustment.pair_index}",
            )
        ]


class ReversalCorrectionRule:
    """``CLP02=22`` reverses an earlier payment; the correction that follows pays less: the difference is an
    overpayment keyed by the original claim's ICN (CLP07 of the reversal), which is also the reference Medicare
    uses when it defers the recovery with a negative ``WO``."""

    name = "reversal_correction"

    def on_claim(self, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]) -> list[Evidence]:
        """Pair a correction with the latest reversal of the same claim that no later payment has paired."""
        if claim.status_code == REVERSAL_STATUS:
            return []
        pending: ClaimPaymentReceived | None = None
        for earlier in prior:
            pending = earlier if earlier.status_code == REVERSAL_STATUS else None
        if pending is None:
            return []
        reversal = pending
        reference = reversal.payer_claim_control_number or claim.original_reference
        overpaid = -reversal.paid - claim.paid
        if reference is None or overpaid <= 0:
            return []
        return [
            Evidence(
                evidence_id=stable_id(claim.remittance_id, "claim", claim.claim_ordinal, self.name),
                rule=self.name,
                channel="claim",
                reference=reference,
                amount=overpaid,
                evidence_date=claim.payment_date,
                source=f"TRN {claim.trace_number} CLP #{claim.segment_ordinal}",
                claim_references=tuple(
                    r for r in (reversal.payer_claim_control_number, claim.payer_claim_control_number) if r
                ),
            )
        ]

    def on_adjustment(self, adjustment: ProviderAdjustmentReceived) -> list[Evidence]:
        """PLB pairs are not this rule's evidence."""
        return []
