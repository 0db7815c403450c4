"""Forwarding balances (``FB``): a negative FB carries money the payer could not take from this remittance to a
later one; the positive FB that takes it closes the balance its reference names, else the account's oldest open
one that can take it.

This module loads the account's balances and applications from the repository, asks
:mod:`~services.matching.forwarding_rules` (pure) where the money goes, and stores the decisions. A balance's
key is the FB's raw reference, which can carry a patient control number after the FCN; the reasons written
here (an offset's ``reason``, the receivable history staff read) quote it through ``shared.phi`` by the payer's
layout.
"""

from collections.abc import Sequence
from functools import partial

from contracts.envelope import Envelope
from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching import forwarding_rules
from services.matching.forwarding_rules import Move, Quote
from services.matching.ledger import Matching
from shared import phi


def _quote(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> Quote:
    """How an explanation may quote a balance's key: never the patient part of the reference."""
    return partial(phi.reference_text, layout=m.reference_layout(env.tenant_id, env.payload.payer_id))


async def open_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> str:
    """A negative FB carries a balance forward under its reference, else its own TRN02 (DOMAIN.md: the
    positive FB names the TRN02 that created it). Positive FBs that arrived first and were applied to
    another balance (or parked on none) are moved to it (:func:`forwarding_rules.opened`). Returns the
    balance's key."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    key = (adj.reference or adj.trace_number).strip()
    await m.repo.forwarding(tenant, account, key, -adj.amount, ZERO, adj.payment_date)
    room = -adj.amount - await m.repo.forwarding_applied(tenant, account, key)
    misplaced = await m.repo.misplaced_applications(tenant, account, key, adj.payment_date)
    await _move(m, env, forwarding_rules.opened(key, room, misplaced, _quote(m, env)))
    return key


async def apply_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> tuple[str, str | None]:
    """A positive FB applies the balance its reference names, else the account's oldest open balance that can
    take the whole amount, else it waits under its own key (:func:`forwarding_rules.applied`). Returns the
    balance's key, and why when it is not the one the FB names (None: the classification's reason stands)."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    named = (adj.reference or "").strip() or None
    balances = await m.repo.forwarding_balances(tenant, account)
    known = named is not None and named in {b.reference for b in balances}
    unnamed = await m.repo.unnamed_applications(tenant, account, named) if known and named else []
    decision = forwarding_rules.applied(
        adj.amount, named, adj.trace_number.strip(), balances, unnamed, _quote(m, env)
    )
    await _move(m, env, decision.moves)
    await m.repo.forwarding(tenant, account, decision.key, ZERO, adj.amount, None)
    return decision.key, decision.reason


async def _move(m: Matching, env: Envelope[ProviderAdjustmentReceived], moves: Sequence[Move]) -> None:
    for move in moves:
        await m.repo.move_forwarding_application(
            env.tenant_id,
            env.account_key,
            move.adjustment_id,
            move.amount,
            move.source,
            move.dest,
            move.reason,
        )
