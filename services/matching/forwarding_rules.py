"""Where forwarding-balance (``FB``) money goes, decided over frozen values: pure functions of the account's
balances and applications (as :mod:`~services.matching.forwarding` loads them from the repository) that return
the decisions — which balance a positive FB applies, which earlier applications move, and why — for the
engine to store. No I/O here; unit tests call them directly.

``quote`` renders a balance's key for a sentence staff read (the FB's raw reference can carry a patient
control number: :func:`shared.phi.reference_text` with the payer's layout).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from services.matching.domain import OpenForwarding, forwarding_for
from services.matching.records import ForwardingApplication, ForwardingBalance

Quote = Callable[[str], str]


@dataclass(frozen=True)
class Move:
    """A positive FB's application moving from the balance it was applied to (None: none) to ``dest``."""

    adjustment_id: UUID
    amount: Decimal
    source: str | None
    dest: str
    reason: str


@dataclass(frozen=True)
class Applied:
    """A positive FB's decision: the balance it applies, why when that is not the one it names (None: the
    classification's reason stands), and the earlier applications that give way to it first."""

    key: str
    reason: str | None
    moves: tuple[Move, ...] = ()


def opened(key: str, room: Decimal, misplaced: Sequence[ForwardingApplication], quote: Quote) -> list[Move]:
    """A negative FB opened balance ``key`` with ``room`` still to apply: the positive FBs that arrived first
    and were applied elsewhere (or nowhere) move to it — one that names it always, one that does not only
    while it fits."""
    moves: list[Move] = []
    for early in misplaced:
        if not early.named and early.amount > room:
            continue
        room -= early.amount
        moves.append(
            Move(
                early.adjustment_id,
                early.amount,
                early.match_reference,
                key,
                f"earlier forwarding balance {quote(key)} applied (it arrived after this payment)",
            )
        )
    return moves


def applied(
    amount: Decimal,
    named: str | None,
    trace_number: str,
    balances: Sequence[ForwardingBalance],
    unnamed: Sequence[ForwardingApplication],
    quote: Quote,
) -> Applied:
    """A positive FB of ``amount`` applies the balance its reference names (after reclaiming it from FBs that
    did not name it, :func:`reclaimed`); without a reference, or under a key no negative FB used, the
    account's oldest open balance that takes the whole amount; else it is kept under its own key (the name,
    else its trace number) for a negative FB arriving later. ``unnamed`` are the applications to the named
    balance that did not name it, latest first (only read when it names a known balance)."""
    if named is not None and named in {b.reference for b in balances}:
        return Applied(named, None, tuple(reclaimed(amount, named, balances, unnamed, quote)))
    key = forwarding_for(
        amount, [OpenForwarding(b.reference, b.open, b.opened_on) for b in balances if b.open > 0]
    )
    if key is not None:
        names = f"names {quote(named)}" if named else "has no reference"
        reason = f"earlier forwarding balance {quote(key)} applied (oldest open balance that takes it; the FB {names})"
        return Applied(key, reason)
    return Applied(named or trace_number, "forwarding balance applied before any open balance could take it")


def reclaimed(
    amount: Decimal,
    key: str,
    balances: Sequence[ForwardingBalance],
    unnamed: Sequence[ForwardingApplication],
    quote: Quote,
) -> list[Move]:
    """An FB naming balance ``key`` finds it taken by FBs that did not name it (applied to the oldest open
    balance before this one arrived): they move to another open balance that can take them, latest first,
    until ``key`` has room for ``amount``, so the named FB applies its own balance as it would have had it
    arrived first. One that fits nowhere else stays."""
    left = {b.reference: b.open for b in balances}
    opened_on = {b.reference: b.opened_on for b in balances}
    moves: list[Move] = []
    for taken in unnamed:
        if left[key] >= amount:
            break
        others = [
            OpenForwarding(ref, room, opened_on[ref]) for ref, room in left.items() if ref != key and room > 0
        ]
        dest = forwarding_for(taken.amount, others)
        if dest is None:
            continue
        moves.append(
            Move(
                taken.adjustment_id,
                taken.amount,
                key,
                dest,
                f"earlier forwarding balance {quote(dest)} applied (oldest open balance that takes it; "
                f"{quote(key)} was named by a later FB)",
            )
        )
        left[key] += taken.amount
        left[dest] -= taken.amount
    return moves
