"""What a batch of matching's messages will ask the ledger for, read from their payloads before any is handled
(the repository of a batch reads it in a few statements instead of a few per message, see ``store.batch``).

It follows the engine's first questions only: the receivable evidence, a merge or an interest posting names,
the keys a WO's or a 72's reference may name its receivable by, the sibling pairs a WO or a 72 with a reference looks
for, and the account's parked recoveries, scored guesses, the payer's waiting staff actions and the netting
remittance's deferrals evidence looks through. A guess never decides anything: the engine asks every question again and gets the answer it would have
had without it (a message that fails, such as a pair of a payer with no installed policy, is skipped here).
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import InterestAccrued, OverpaymentDetected, ProviderAdjustmentReceived
from policies.config import PolicyConfigError
from services.matching import domain
from services.matching.ledger import Matching
from services.matching.repository import Wanted


def wanted(m: Matching, envelopes: Sequence[Envelope[Any]]) -> Wanted:
    """What these messages (of any of matching's topics) will ask for first."""
    receivables: list[tuple[str, UUID]] = []
    lookups: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
    siblings: list[tuple[str, UUID, str, str]] = []
    accounts: list[tuple[str, str]] = []
    payers: list[tuple[str, str]] = []
    remittances: list[tuple[str, UUID]] = []
    for env in envelopes:
        payload, tenant = env.payload, env.tenant_id
        if isinstance(payload, OverpaymentDetected):
            receivables.append((tenant, payload.receivable_id))
            receivables += [(tenant, rid) for rid in payload.merged_receivables]
            accounts.append((tenant, env.account_key))
            payers.append((tenant, payload.payer_id))
            if payload.netted_in_remittance is not None:
                remittances.append((tenant, payload.netted_in_remittance))
        elif isinstance(payload, InterestAccrued):
            receivables.append((tenant, payload.receivable_id))
        elif isinstance(payload, ProviderAdjustmentReceived) and payload.reason_code in ("WO", "72"):
            try:
                parsed = domain.read_reference(m.policies, tenant, payload.payer_id, payload.reference)
            except PolicyConfigError:
                continue
            candidates = tuple(parsed.candidates(payload.reference))
            if candidates:  # a 72's WO was matched by the same reference: its offsets turn into refunds there
                lookups.append((tenant, env.account_key, candidates))
            if parsed.receivable is not None:
                siblings.append((tenant, payload.remittance_id, parsed.receivable, "72"))
                if payload.reason_code == "72":
                    siblings.append((tenant, payload.remittance_id, parsed.receivable, "WO"))
    return Wanted(
        tuple(dict.fromkeys(receivables)),
        tuple(lookups),
        tuple(dict.fromkeys(siblings)),
        tuple(dict.fromkeys(accounts)),
        tuple(dict.fromkeys(payers)),
        tuple(dict.fromkeys(remittances)),
    )
