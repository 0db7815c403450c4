"""What one PLB pair's money becomes, decided over frozen values: the :class:`Explanation` the engine stores and
announces, which receivables a recoupment goes to when its reference names none for certain, and how a
``72`` on the same reference turns a recoupment into a refund acknowledgement. Pure functions: the engine
(``engine``) loads what they need from the repository, calls them, and stores what they return.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import Allocation
from contracts.money import ZERO
from services.matching.domain import Candidate, best_candidate
from shared.messages import Outgoing

RECORDED_REFUND = (
    "refund check already recorded by staff, acknowledged by the payer (72 on the same reference)"
)


@dataclass(frozen=True)
class Explanation:
    """The decision about one PLB pair: the bucket every cent of it ends in, why, what it was applied to, and
    the events the decision publishes besides the pair's own offset event. Each step returns a new one
    (``dataclasses.replace``); the handler stores the last and announces it."""

    reason: str
    bucket: str = "non_offset"
    unmatched: Decimal = ZERO
    awaiting: Decimal = ZERO
    """A refund pair's money waiting for its receivable (acknowledged, never in the work queue)."""
    allocations: tuple[Allocation, ...] = ()
    outputs: tuple[Outgoing, ...] = ()
    method: str | None = None
    suggestion: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class Targets:
    """The receivables a recoupment goes to, in order, how they were found, and a suggestion for staff when
    none was certain enough."""

    ids: tuple[UUID, ...]
    method: str | None
    suggestion: str | None = None


def from_pool(
    pool: Sequence[Candidate], amount: Decimal, reference: str | None, paid_on: date, threshold: float
) -> Targets:
    """A recoupment whose reference names no known receivable: without a reference it is a lump recoupment
    spread over the account's open receivables oldest first; with one, the best-scoring open receivable if it
    is certain enough (:func:`domain.best_candidate`), else none, with the best one as a suggestion."""
    if reference is None:
        return Targets(tuple(UUID(c.receivable_id) for c in pool), "oldest_first")
    if not reference:
        return Targets((), None)
    chosen, confidence, best = best_candidate(list(pool), amount, reference, paid_on, threshold)
    if chosen is not None:
        return Targets((UUID(chosen.receivable_id),), f"scored:{confidence:.2f}")
    suggestion = (
        None
        if best is None
        else f"receivable {best.receivable_id} (score {confidence:.2f} < {threshold:.2f})"
    )
    return Targets((), None, suggestion)


def recovered(
    allocations: Sequence[Allocation], left: Decimal, targets: Targets, found_any: bool
) -> Explanation:
    """A positive WO after its money was applied: allocated (with what exceeded the open balance left
    unmatched) or, when nothing was applied, unmatched with the reason staff read."""
    if allocations:
        refs = ", ".join(a.reference for a in allocations)
        excess = f"; {left} exceeds the open balance" if left > 0 else ""
        reason = f"recovered against {refs} ({targets.method}){excess}"
    elif found_any:
        reason = "every receivable it names is already settled"
    else:
        reason = "no open receivable with this reference yet"
    return Explanation(
        reason,
        bucket="allocated" if allocations else "unmatched",
        unmatched=left,
        allocations=tuple(allocations),
        method=targets.method,
        suggestion=targets.suggestion,
    )


def acknowledged(reason: str) -> str:
    """A recovery's explanation once a 72 on its reference shows it is a refund."""
    return f"refund acknowledged (72 on the same reference): {reason}"


def refund_of_allocated(out: Explanation) -> Explanation:
    """A WO with a 72 on its reference in the same remittance was applied: its money is the provider's
    refund, not cash withheld."""
    return replace(out, bucket="refund_acknowledged", reason=acknowledged(out.reason))


def refund_of_recorded(out: Explanation, taken: Decimal, allocations: Sequence[Allocation]) -> Explanation:
    """Part of a refund pair's WO is the payer's line for a refund check staff already recorded."""
    return replace(
        out,
        unmatched=out.unmatched - taken,
        allocations=(*out.allocations, *allocations),
        bucket="refund_acknowledged",
        reason=f"{RECORDED_REFUND}: {out.reason}",
    )


def unknown_receivable_refund(reference: str | None) -> str:
    """Why a refund pair's WO is not in the work queue although no receivable is known for it."""
    return (
        f"refund acknowledged for an unknown receivable: the 72 and this WO on {reference} net to zero (the "
        "provider's check, not money withheld); no receivable is known for it yet, and the refund is applied "
        "when it appears"
    )


def awaiting_receivable(out: Explanation, reference: str | None) -> Explanation:
    """A refund pair (WO and 72s netting to zero) whose receivable is not known: its unmatched money is a
    refund acknowledged, waiting for the receivable, never in the work queue."""
    return replace(
        out,
        awaiting=out.unmatched,
        unmatched=ZERO,
        bucket="refund_acknowledged",
        reason=unknown_receivable_refund(reference),
    )
