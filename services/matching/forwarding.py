"""Forwarding balances (``FB``): a negative FB carries money the payer could not take from this remittance to a
later one; the positive FB that takes it closes the balance its reference names, else the account's oldest open
one that can take it.

This module loads the account's balances and applications from the repository, asks
:mod:`~services.matching.forwarding_rules` (pure) where the money goes, and stores the decisions. A balance's
key is the FB's raw reference, which can carry a patient control number after the FCN; the reasons written
here (an offset's ``reason``, the receivable history staff read) quote it through ``shared.phi`` by the payer's
layout.
"""

from functools import partial

from contracts.envelope import Envelope
from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching import forwarding_rules
from services.matching.forwarding_rules import Quote
from services.matching.ledger import Matching
from services.matching.records import ForwardingApplication
from shared import phi


def _quote(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> Quote:
    """How an explanation may quote a balance's key: never the patient part of the reference."""
    return partial(phi.reference_text, layout=m.reference_layout(env.tenant_id, env.payload.payer_id))


async def open_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> str:
    """A negative FB carries a balance forward under its reference, else its own TRN02 (DOMAIN.md: the
    positive FB names the TRN02 that created it). Positive FBs that arrived first and were applied to
    another balance (or parked on none) move to where business-date order places them
    (:func:`forwarding_rules.assign`). Returns the balance's key."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    key = (adj.reference or adj.trace_number).strip()
    await m.repo.forwarding(tenant, account, key, -adj.amount, ZERO, adj.payment_date)
    await _place(m, env, None)
    return key


async def apply_forwarding(m: Matching, env: Envelope[ProviderAdjustmentReceived]) -> tuple[str, str | None]:
    """A positive FB applies the balance its reference names, else the account's oldest balance opened by its
    payment date that can take the whole amount, else it waits under its own key — judged with every FB of
    the account in business-date order, so earlier applications that arrived out of order move first
    (:func:`forwarding_rules.assign`). Returns the balance's key, and why when it is not the one the FB names
    (None: the classification's reason stands)."""
    adj, tenant, account = env.payload, env.tenant_id, env.account_key
    mine = ForwardingApplication(
        env.event_id,
        adj.amount,
        None,
        (adj.reference or "").strip() or None,
        adj.payment_date,
        adj.trace_number.strip(),
        adj.segment_ordinal,
        adj.pair_index,
    )
    placement = await _place(m, env, mine)
    assert placement is not None
    await m.repo.forwarding(tenant, account, placement.key, ZERO, adj.amount, None)
    return placement.key, placement.reason


async def _place(
    m: Matching, env: Envelope[ProviderAdjustmentReceived], mine: ForwardingApplication | None
) -> forwarding_rules.Placement | None:
    """Re-place the account's stored positive FBs (and ``mine``, not stored yet) in business-date order and
    move the ones that sit elsewhere; return where ``mine`` goes."""
    tenant, account = env.tenant_id, env.account_key
    balances = await m.repo.forwarding_balances(tenant, account)
    stored = [
        a
        for a in await m.repo.forwarding_applications(tenant, account)
        if mine is None or a.adjustment_id != mine.adjustment_id
    ]
    quote = _quote(m, env)
    placed = forwarding_rules.assign(balances, [*stored, *([mine] if mine else [])], quote)
    for move in forwarding_rules.moves(stored, placed, quote):
        await m.repo.move_forwarding_application(
            tenant, account, move.adjustment_id, move.amount, move.source, move.dest, move.reason
        )
    return placed[mine.adjustment_id] if mine is not None else None
