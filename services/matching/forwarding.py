"""Forwarding balances (``FB``): a negative FB carries money the payer could not take from this remittance to a
later one; the positive FB that takes it closes the balance its reference names, else the account's oldest open
one that can take it.

A balance's key is the FB's raw reference, which can carry a patient control number after the FCN; the reasons
written here (an offset's ``reason``, the receivable history staff read) quote it through ``shared.phi`` by the
payer's layout.
"""

from contracts.envelope import Envelope
from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching import domain
from services.matching.ledger import Matching
from services.matching.records import ForwardingBalance
from shared import phi


def _quoted(m: Matching, env: Envelope[ProviderAdjustmentReceived], key: str) -> str:
    """A balance's key as an explanation may quote it: never the patient part of the reference."""
    return phi.reference_text(key, m.reference_layout(env.tenant_id, env.payload.payer_id))


async def open_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> str:
    """A negative FB carries a balance forward under its reference, else its own TRN02 (DOMAIN.md: the
    positive FB names the TRN02 that created it). Positive FBs that arrived first and were applied to
    another balance (or parked on none) are moved to it. Returns the balance's key."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    key = (adj.reference or adj.trace_number).strip()
    await m.repo.forwarding(tenant, account, key, -adj.amount, ZERO, adj.payment_date)
    room = -adj.amount - await m.repo.forwarding_applied(tenant, account, key)
    for early in await m.repo.misplaced_applications(tenant, account, key, adj.payment_date):
        if not early.named and early.amount > room:
            continue
        room -= early.amount
        await m.repo.move_forwarding_application(
            tenant,
            account,
            early.adjustment_id,
            early.amount,
            early.match_reference,
            key,
            f"earlier forwarding balance {_quoted(m, env, key)} applied (it arrived after this payment)",
        )
    return key


async def apply_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> tuple[str, str | None]:
    """A positive FB applies the balance its reference names; without a reference, or under a key the
    negative FB did not use (a payer payment number), the account's oldest open balance that can take the
    whole amount (same payer and payee: the account). When none can, it is kept under its own key, where a
    negative FB arriving later finds it (:func:`open_forwarding`). Returns the balance's key, and why when it
    is not the one the FB names (None: the classification's reason stands)."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    named = (adj.reference or "").strip() or None
    reason: str | None = None
    rows = await m.repo.forwarding_balances(tenant, account)
    key = named if named in {r.reference for r in rows} else None
    if key is not None:
        await reclaim(m, env, key, rows)
    if key is None:
        key = domain.forwarding_for(
            adj.amount,
            [domain.OpenForwarding(r.reference, r.open, r.opened_on) for r in rows if r.open > 0],
        )
        if key is not None:
            reason = (
                f"earlier forwarding balance {_quoted(m, env, key)} applied (oldest open balance that takes it; "
                f"the FB {'names ' + _quoted(m, env, named) if named else 'has no reference'})"
            )
        else:
            key = named or adj.trace_number.strip()
            reason = "forwarding balance applied before any open balance could take it"
    await m.repo.forwarding(tenant, account, key, ZERO, adj.amount, None)
    return key, reason


async def reclaim(
    m: Matching, env: Envelope[ProviderAdjustmentReceived], key: str, rows: list[ForwardingBalance]
) -> None:
    """An FB naming balance ``key`` finds it taken by FBs that did not name it (applied to the oldest open
    balance before this one arrived): they move to another open balance that can take them, so the named FB
    applies its own balance, as it would have had it arrived first. One that fits nowhere else stays."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    left = {r.reference: r.open for r in rows}
    opened_on = {r.reference: r.opened_on for r in rows}
    for taken in await m.repo.unnamed_applications(tenant, account, key):
        if left[key] >= adj.amount:
            return
        others = [
            domain.OpenForwarding(ref, room, opened_on[ref])
            for ref, room in left.items()
            if ref != key and room > 0
        ]
        dest = domain.forwarding_for(taken.amount, others)
        if dest is None:
            continue
        await m.repo.move_forwarding_application(
            tenant,
            account,
            taken.adjustment_id,
            taken.amount,
            key,
            dest,
            f"earlier forwarding balance {_quoted(m, env, dest)} applied (oldest open balance that takes it; "
            f"{_quoted(m, env, key)} was named by a later FB)",
        )
        left[key] += taken.amount
        left[dest] -= taken.amount
