"""Notification's pure domain: which upstream facts become which messages for staff.

Messages carry identifiers (reference/FCN, trace number, receivable id) and amounts only — never patient
names, member ids or patient control numbers — because they leave the system by webhook and e-mail.
"""

from dataclasses import dataclass, field
from typing import Literal

from contracts.events import InterestAccrued, OffsetRecorded, ReceivableChanged

Severity = Literal["info", "warning", "action"]


@dataclass(frozen=True)
class Message:
    """A notification before it is given an id and routed."""

    kind: str
    severity: Severity
    summary: str
    facts: dict[str, str] = field(default_factory=dict)


def for_receivable(event_type: str, change: ReceivableChanged) -> list[Message]:
    """Receivable opened or settled."""
    facts = {
        "reference": change.reference,
        "payer_id": change.payer_id,
        "receivable_id": str(change.receivable_id),
        "balance": f"{change.balance:.2f}",
        "status": change.status,
    }
    if event_type == "ReceivableOpened":
        return [
            Message(
                "receivable_opened",
                "action",
                f"Overpayment {change.reference}: {change.principal:.2f} owed to payer {change.payer_id}, "
                f"determined {change.determination_date.isoformat()}",
                {
                    **facts,
                    "principal": f"{change.principal:.2f}",
                    "determination_date": change.determination_date.isoformat(),
                },
            )
        ]
    if event_type == "ReceivableSettled":
        return [Message("receivable_settled", "info", f"Overpayment {change.reference} settled", facts)]
    return []


def for_offset(event_type: str, offset: OffsetRecorded) -> list[Message]:
    """An offset applied to a receivable, or a recovery that matched nothing."""
    facts = {
        "trace_number": offset.trace_number,
        "reason_code": offset.reason_code,
        "amount": f"{offset.amount:.2f}",
        "payment_date": offset.payment_date.isoformat(),
    }
    if offset.reference:
        facts["reference"] = offset.reference.strip()
    if event_type == "OffsetApplied":
        applied = sum((a.to_interest + a.to_principal for a in offset.allocations), start=offset.amount * 0)
        refs = ", ".join(a.reference for a in offset.allocations)
        return [
            Message(
                "offset_applied",
                "info",
                f"Payer withheld {applied:.2f} on {offset.trace_number} against {refs}",
                {**facts, "applied": f"{applied:.2f}", "unmatched": f"{offset.unmatched_amount:.2f}"},
            )
        ]
    if event_type == "OffsetUnmatched":
        return [
            Message(
                "unmatched_recovery",
                "action",
                f"Unexplained recovery of {offset.unmatched_amount:.2f} on {offset.trace_number}: "
                f"{offset.reason}",
                {**facts, "unmatched": f"{offset.unmatched_amount:.2f}"},
            )
        ]
    if event_type == "ForwardingBalanceOpened":
        return [
            Message(
                "forwarding_balance_opened",
                "warning",
                f"Forwarding balance of {-offset.amount:.2f} carried to a later remittance",
                facts,
            )
        ]
    return []


def for_interest(accrual: InterestAccrued) -> list[Message]:
    """Interest charged for a period."""
    return [
        Message(
            "interest_accrued",
            "warning",
            f"Interest {accrual.amount:.2f} accrued on {accrual.reference} for period {accrual.period_number}",
            {
                "reference": accrual.reference,
                "receivable_id": str(accrual.receivable_id),
                "amount": f"{accrual.amount:.2f}",
                "period_end": accrual.period_end.isoformat(),
                "annual_rate": str(accrual.annual_rate),
            },
        )
    ]
