"""Intake's pure domain: choose a feed parser, and turn parsed transactions into enveloped events.

Event ids derive from the remittance identity (payer, TRN02, ISA13/GS06/ST02, tenant) and the position of
each claim or PLB pair, so a file fed twice, or reissued with other bytes, maps onto the same ids.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from contracts.envelope import Envelope
from shared import envelopes
from shared.feeds import FeedError, FeedErrorReason, FeedParser, ParsedRemittance
from shared.ids import account_key, stable_id

REMITTANCES = "remit.remittances.v1"
CLAIM_PAYMENTS = "remit.claim-payments.v1"
PROVIDER_ADJUSTMENTS = "remit.provider-adjustments.v1"


def choose_parser(
    parsers: Mapping[str, FeedParser], content: bytes, file_name: str, hint: str | None
) -> FeedParser | FeedError:
    """The parser named by the hint, else the first (by name) whose sniff accepts the file's head."""
    if hint is not None:
        if hint in parsers:
            return parsers[hint]
        return FeedError(
            FeedErrorReason.UNKNOWN_FORMAT,
            f"no feed parser named {hint!r} is installed",
            file_name,
            expected=", ".join(sorted(parsers)),
        )
    head = content[:4096]
    for name in sorted(parsers):
        if parsers[name].sniff(head):
            return parsers[name]
    return FeedError(
        FeedErrorReason.UNKNOWN_FORMAT,
        "no installed feed parser recognises this file",
        file_name,
        expected=f"one of: {', '.join(sorted(parsers))}",
    )


def account_of(tenant_id: str, parsed: ParsedRemittance) -> str:
    """Partition key of the remittance's provider–payer account."""
    return account_key(tenant_id, parsed.remittance.payer_id, parsed.remittance.payee_id)


def remittance_events(tenant_id: str, parsed: ParsedRemittance) -> list[tuple[str, Envelope[Any]]]:
    """Every event of one transaction in document order: remittance, its claims, its PLB pairs."""
    rem = parsed.remittance
    key = account_of(tenant_id, parsed)
    rid = rem.remittance_id
    common = {"tenant_id": tenant_id, "account_key": key}
    out: list[tuple[str, Envelope[Any]]] = [
        (
            REMITTANCES,
            envelopes.build(
                rem,
                event_id=rid,
                event_type="RemittanceReceived",
                causation_id=f"file:{rem.file_sha256}#tx{rem.transaction_index}",
                **common,
            ),
        )
    ]
    for claim in parsed.claims:
        out.append(
            (
                CLAIM_PAYMENTS,
                envelopes.build(
                    claim,
                    event_id=stable_id(rid, "claim", claim.claim_ordinal),
                    event_type="ClaimPaymentReceived",
                    causation_id=f"remittance:{rid}#seg{claim.segment_ordinal}",
                    **common,
                ),
            )
        )
    for adj in parsed.adjustments:
        out.append(
            (
                PROVIDER_ADJUSTMENTS,
                envelopes.build(
                    adj,
                    event_id=stable_id(rid, "plb", adj.segment_ordinal, adj.pair_index),
                    event_type="ProviderAdjustmentReceived",
                    causation_id=f"remittance:{rid}#seg{adj.segment_ordinal}.{adj.pair_index}",
                    **common,
                ),
            )
        )
    return out


def split_results(
    results: Sequence[ParsedRemittance | FeedError],
) -> tuple[list[ParsedRemittance], list[tuple[int, FeedError]]]:
    """Good transactions and (position among the file's results, 1-based, error) of bad ones.

    The position, not the error's transaction index, keys a rejection: an envelope error (a wrong GE01) has
    no transaction of its own and would otherwise take the index of a bad transaction beside it, and one of
    the two would go unrecorded. The transaction index stays in the error's location.
    """
    good: list[ParsedRemittance] = []
    bad: list[tuple[int, FeedError]] = []
    for position, result in enumerate(results, start=1):
        if isinstance(result, FeedError):
            bad.append((position, result))
        else:
            good.append(result)
    return good, bad
