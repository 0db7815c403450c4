"""Where forwarding-balance (``FB``) money goes, decided over frozen values: a pure function of the account's
balances and positive ``FB`` pairs (as :mod:`~services.matching.forwarding` loads them from the repository)
that says which balance each positive FB applies, so the engine can move the ones that sit elsewhere. No
I/O here; unit tests call it directly.

The assignment is recomputed from the whole account every time an FB arrives, in business-date order, so it
is a function of the set of FBs and never of the order their files arrived in (DESIGN.md invariant 6): an
unnamed FB that arrived before the balance it applies, or after a later one took that balance, ends where it
would have had every file come in date order.

``quote`` renders a balance's key for a sentence staff read (the FB's raw reference can carry a patient
control number: :func:`shared.phi.reference_text` with the payer's layout).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from contracts.money import ZERO
from services.matching.domain import OpenForwarding, forwarding_for
from services.matching.records import ForwardingApplication, ForwardingBalance

Quote = Callable[[str], str]

UNPLACED = "forwarding balance applied before any open balance could take it"


@dataclass(frozen=True)
class Placement:
    """Where one positive FB goes: the balance's key, and why when that is not the balance it names (None:
    the classification's reason stands)."""

    key: str
    reason: str | None


@dataclass(frozen=True)
class Move:
    """A positive FB's application moving from the balance it was applied to (None: none) to ``dest``."""

    adjustment_id: UUID
    amount: Decimal
    source: str | None
    dest: str
    reason: str


def assign(
    balances: Sequence[ForwardingBalance], applications: Sequence[ForwardingApplication], quote: Quote
) -> dict[UUID, Placement]:
    """Every positive FB of an account placed. One naming a balance a negative FB opened takes it, first (it
    names the TRN02 that created it, DOMAIN.md §2: certain, so no guess may take its room). The others, in
    business-date order (:attr:`ForwardingApplication.position`): one naming a key an earlier FB waits under
    joins it; else the oldest balance opened on or before its payment date that can still take the whole
    amount (a positive FB applies an *earlier* carried balance; applying part of it to a balance it does not
    fit would close the wrong one); else it waits under its own key (its name, else its trace number) for
    staff to see."""
    opened = {b.reference: b for b in balances if b.opened_amount > 0}
    applied: dict[str, Decimal] = {}
    placed: dict[UUID, Placement] = {}
    ordered = sorted(applications, key=lambda a: a.position)
    for fb in ordered:
        if fb.named is not None and fb.named in opened:
            placed[fb.adjustment_id] = Placement(fb.named, None)
            applied[fb.named] = applied.get(fb.named, ZERO) + fb.amount
    waiting: set[str] = set()
    for fb in ordered:
        if fb.adjustment_id in placed:
            continue
        if fb.named is not None and fb.named in waiting:
            placement = Placement(fb.named, UNPLACED)
        else:
            room = [
                OpenForwarding(ref, b.opened_amount - applied.get(ref, ZERO), b.opened_on)
                for ref, b in opened.items()
                if b.opened_on is not None and b.opened_on <= fb.payment_date
            ]
            key = forwarding_for(fb.amount, room)
            if key is None:
                placement = Placement(fb.named or fb.trace_number, UNPLACED)
                waiting.add(placement.key)
            else:
                names = f"names {quote(fb.named)}" if fb.named else "has no reference"
                placement = Placement(
                    key,
                    f"earlier forwarding balance {quote(key)} applied (oldest open balance that takes it; "
                    f"the FB {names})",
                )
        applied[placement.key] = applied.get(placement.key, ZERO) + fb.amount
        placed[fb.adjustment_id] = placement
    return placed


def moves(
    applications: Sequence[ForwardingApplication], placed: dict[UUID, Placement], quote: Quote
) -> list[Move]:
    """The stored applications that sit on another balance than :func:`assign` places them on."""
    found: list[Move] = []
    for fb in sorted(applications, key=lambda a: a.position):
        where = placed.get(fb.adjustment_id)
        if where is None or where.key == fb.match_reference:
            continue
        reason = (
            where.reason
            or f"earlier forwarding balance {quote(where.key)} applied (it arrived after this payment)"
        )
        found.append(Move(fb.adjustment_id, fb.amount, fb.match_reference, where.key, reason))
    return found
