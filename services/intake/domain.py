"""Intake's pure domain: choose a feed parser, tell a file's transactions already posted from new ones, and turn
parsed transactions into enveloped events.

Event ids derive from the remittance identity (payer, TRN02, ISA13/GS06/ST02, tenant) and the position of
each claim or PLB pair, so a file fed twice, or reissued with other bytes, maps onto the same ids.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import (
    CLAIM_LINES_PER_EVENT,
    CLAIMS_PER_EVENT,
    PATIENT_TOKENS_PER_EVENT,
    ClaimPaymentReceived,
    ClaimPaymentsReceived,
    PatientToken,
    PatientTokensSeen,
)
from contracts.topics import CLAIM_PAYMENTS, PATIENT_TOKENS, PROVIDER_ADJUSTMENTS, REMITTANCES, Topic
from services.intake.feeds import FeedError, FeedErrorReason, FeedParser, ParsedRemittance
from shared import envelopes, phi
from shared.bundles import consecutive_parts
from shared.claims import claims_causation, claims_event_id
from shared.ids import account_key, stable_id


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


def remittance_events(tenant_id: str, parsed: ParsedRemittance) -> list[tuple[Topic[Any], Envelope[Any]]]:
    """Every event of one transaction in document order: remittance, its claims (in parts,
    :func:`claim_events`), its PLB pairs; then the digests of its claims' patient control numbers
    (:func:`token_events`)."""
    rem = parsed.remittance
    key = account_of(tenant_id, parsed)
    rid = rem.remittance_id
    common = {"tenant_id": tenant_id, "account_key": key}
    out: list[tuple[Topic[Any], Envelope[Any]]] = [
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
    out += claim_events(tenant_id, parsed)
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
    return out + token_events(tenant_id, parsed)


def claim_parts(claims: Sequence[ClaimPaymentReceived]) -> list[Sequence[ClaimPaymentReceived]]:
    """The transaction's claims cut into consecutive parts of at most
    :data:`~contracts.events.CLAIMS_PER_EVENT` claims and :data:`~contracts.events.CLAIM_LINES_PER_EVENT`
    service lines plus CAS triples (a claim with more lines is a part alone), so no part comes near the
    broker's message cap however heavy its claims. A pure function of the claims: a transaction read again
    (a redelivered file, a replay) is cut the same way, into events with the same ids."""
    return consecutive_parts(
        claims,
        lambda claim: len(claim.services) + len(claim.adjustments),
        CLAIM_LINES_PER_EVENT,
        CLAIMS_PER_EVENT,
    )


def claim_events(tenant_id: str, parsed: ParsedRemittance) -> list[tuple[Topic[Any], Envelope[Any]]]:
    """The transaction's claims, one :class:`~contracts.events.ClaimPaymentsReceived` per part
    (:func:`claim_parts`), instead of one message per claim: the per-message cost of the consumer and the
    broker was most of what a claim cost (issue #18). Each claim is the payload v1 carried; event ids derive
    from the remittance and the part (``shared.claims``), and detection rebuilds each claim's v1 event id."""
    rid = parsed.remittance.remittance_id
    common = {"tenant_id": tenant_id, "account_key": account_of(tenant_id, parsed)}
    out: list[tuple[Topic[Any], Envelope[Any]]] = []
    for part, chunk in enumerate(claim_parts(parsed.claims), start=1):
        payload = ClaimPaymentsReceived(
            remittance_id=rid,
            part=part,
            first_claim_ordinal=chunk[0].claim_ordinal,
            claim_count=len(chunk),
            claims=tuple(chunk),
        )
        out.append(
            (
                CLAIM_PAYMENTS,
                envelopes.build(
                    payload,
                    event_id=claims_event_id(rid, part),
                    event_type="ClaimPaymentsReceived",
                    causation_id=claims_causation(rid, part),
                    **common,
                ),
            )
        )
    return out


def token_events(tenant_id: str, parsed: ParsedRemittance) -> list[tuple[Topic[Any], Envelope[Any]]]:
    """The patient control numbers of the transaction's claims as keyed digests (``shared.phi``), one event
    per :data:`~contracts.events.PATIENT_TOKENS_PER_EVENT` claims: what notification learns to scrub outbound
    text with. One message per transaction instead of notification consuming every claim payment, whose
    per-message cost (consumer, stream, idempotency claim) was most of what learning cost (issue #18). Ids
    derive from the remittance and the part, like every other event of the transaction."""
    rid = parsed.remittance.remittance_id
    common = {"tenant_id": tenant_id, "account_key": account_of(tenant_id, parsed)}
    claims = parsed.claims
    out: list[tuple[Topic[Any], Envelope[Any]]] = []
    for part, start in enumerate(range(0, len(claims), PATIENT_TOKENS_PER_EVENT), start=1):
        chunk = claims[start : start + PATIENT_TOKENS_PER_EVENT]
        rows = phi.shaped_token_rows("id", [c.patient_control_number for c in chunk])
        if not rows:
            continue
        seen = PatientTokensSeen(
            remittance_id=rid,
            part=part,
            first_claim_ordinal=chunk[0].claim_ordinal,
            claim_count=len(chunk),
            tokens=tuple(PatientToken(length=n, digest=d, alphanumeric=a) for _, n, d, a in rows),
            key_id=phi.key_id(),
        )
        out.append(
            (
                PATIENT_TOKENS,
                envelopes.build(
                    seen,
                    event_id=stable_id(rid, "patient-tokens", part),
                    event_type="PatientTokensSeen",
                    causation_id=f"remittance:{rid}#claims{part}",
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


LISTED_REPEATS = 10
"""Transaction positions listed in a repeat warning; the count says how many there were in all."""


def collapse_repeats(good: Sequence[ParsedRemittance]) -> tuple[list[ParsedRemittance], int]:
    """The file's remittances once each, in file order, and how many repeats were folded into an earlier one.

    A file can hold one transaction several times (a payer or clearinghouse appending the same interchange
    again and again): every copy has the same remittance identity (tenant, payer, ``TRN02``,
    ``ISA13/GS06/ST02``) and so the same event ids, and only the first can ever post. Instead of the copies
    vanishing as "already posted", the first carries a warning (stored with the remittance, printed by
    ``offsetstream files --warnings``) saying how many copies the file held, where (transaction positions,
    never element values), and whether any of them carried other claims or money, which then did not post.
    """
    kept: list[ParsedRemittance] = []
    first: dict[UUID, int] = {}
    copies: dict[UUID, list[ParsedRemittance]] = {}
    for parsed in good:
        rid = parsed.remittance.remittance_id
        if rid in first:
            copies.setdefault(rid, []).append(parsed)
        else:
            first[rid] = len(kept)
            kept.append(parsed)
    for rid, repeated in copies.items():
        at = first[rid]
        original = kept[at]
        kept[at] = replace(original, warnings=(*original.warnings, repeat_warning(original, repeated)))
    return kept, sum(len(repeated) for repeated in copies.values())


def repeat_warning(original: ParsedRemittance, repeated: Sequence[ParsedRemittance]) -> str:
    """What staff read about the copies of ``original`` in the same file (positions and counts only)."""
    positions = [p.remittance.transaction_index for p in repeated]
    listed = ", ".join(f"#{i}" for i in positions[:LISTED_REPEATS]) + (
        ", …" if len(positions) > LISTED_REPEATS else ""
    )
    head = (
        f"transaction #{original.remittance.transaction_index} is repeated {len(repeated)} more time(s) in this "
        f"file (transactions {listed}) under the same control numbers (ISA13/GS06/ST02) and trace number"
    )
    differing = [p.remittance.transaction_index for p in repeated if not same_content(original, p)]
    if not differing:
        return f"{head}, with the same claims and money: posted once"
    shown = ", ".join(f"#{i}" for i in differing[:LISTED_REPEATS]) + (
        ", …" if len(differing) > LISTED_REPEATS else ""
    )
    return (
        f"{head}; {len(differing)} of them ({shown}) carry other claims or money and were not posted (they "
        "share this remittance's ids): ask the payer for a corrected file"
    )


def same_content(a: ParsedRemittance, b: ParsedRemittance) -> bool:
    """Two transactions of one identity carrying the same payment: header money and every claim and PLB pair
    (the remittance's position in the file aside)."""
    ra, rb = a.remittance, b.remittance
    return (
        ra.model_copy(update={"transaction_index": rb.transaction_index}) == rb
        and a.claims == b.claims
        and a.adjustments == b.adjustments
    )


PostedBefore = Literal["same", "reissue", "conflict"]
"""How a remittance was posted before (see ``IntakeStore.posted_before``); None when it never was."""

_STRENGTH: dict[PostedBefore | None, int] = {None: 0, "conflict": 1, "reissue": 2, "same": 3}


def strongest(*answers: PostedBefore | None) -> PostedBefore | None:
    """The answer that decides among several earlier postings: the same identity, else a reissue (the same
    money), else a conflict (other money); the order of ``IntakeStore.posted_before``'s ``ORDER BY``."""
    return max(answers, key=_STRENGTH.__getitem__)


def payment_of(parsed: ParsedRemittance) -> tuple[str, str, str, date]:
    """What names one payment whatever its envelope: payer, payee, TRN02 trace number and payment date."""
    r = parsed.remittance
    return r.payer_id, r.payee_id, r.trace_number, r.payment_date


def money_of(parsed: ParsedRemittance) -> tuple[Decimal, Decimal, Decimal, int, int]:
    """The totals a reissue repeats and a conflict changes (the columns ``IntakeStore.posted_before`` compares:
    money has exactly two places, as in ``numeric(14,2)``, so equal here is equal there)."""
    r = parsed.remittance
    return r.total_paid, r.total_claim_paid, r.total_provider_adjustments, r.claim_count, r.adjustment_count


@dataclass
class PostedInFile:
    """The remittances of one file posted so far, in file order, for classifying the file's later ones.

    Intake asks the ledger about all of a file's transactions in one query, before recording any of them
    (issue #18: a constant number of round trips a file); the ledger's answer then lacks the file's own earlier
    transactions, which the one-at-a-time loop recorded before asking about the next. This closes that gap: a
    later transaction of the same payment is a reissue or a conflict of one posted earlier in the file exactly
    as it would be of one in the ledger. Only what was actually recorded may be added: a transaction skipped
    as posted before, or refused (too large), was never posted and must not make a later one a duplicate."""

    _ids: set[UUID] = field(default_factory=set)
    _money: dict[tuple[str, str, str, date], set[tuple[Decimal, Decimal, Decimal, int, int]]] = field(
        default_factory=dict
    )

    def posted_before(self, parsed: ParsedRemittance, stored: PostedBefore | None) -> PostedBefore | None:
        """How ``parsed`` was posted before, given ``stored``, the ledger's answer from before this file."""
        if parsed.remittance.remittance_id in self._ids:
            here: PostedBefore | None = "same"
        elif (amounts := self._money.get(payment_of(parsed))) is None:
            here = None
        else:
            here = "reissue" if money_of(parsed) in amounts else "conflict"
        return strongest(stored, here)

    def add(self, parsed: ParsedRemittance) -> None:
        """``parsed`` was posted (recorded with the file)."""
        self._ids.add(parsed.remittance.remittance_id)
        self._money.setdefault(payment_of(parsed), set()).add(money_of(parsed))


def transaction_spans(content: bytes) -> dict[int, tuple[int, int]]:
    """``{transaction index: (start, end)}`` byte ranges of an X12 file's ``ST..SE`` transactions, numbered
    1, 2, … in file order as the reader numbers them (``FeedError.transaction_index``).

    Best effort, for dead-letter records that name the part of a stored file a rejection is about: the
    delimiters are those of the first ISA, and a transaction whose ``SE`` cannot be found gets no range
    (its record still names the file and the transaction). Empty for anything that is not X12."""
    start = content.find(b"ISA")
    if start < 0 or start > _PREAMBLE_LIMIT or len(content) < start + 106:
        return {}
    element = content[start + 3 : start + 4]
    at = start + 3
    for _ in range(15):
        at = content.find(element, at + 1)
        if at < 0:
            return {}
    terminator = content[at + 2 : at + 3]
    if not terminator or terminator.isalnum() or terminator == element:
        return {}
    boundary = re.compile(re.escape(terminator) + rb"[\s\x00]*(ST|SE)" + re.escape(element))
    spans: dict[int, tuple[int, int]] = {}
    index = 0
    opened: int | None = None
    for match in boundary.finditer(content):
        if match.group(1) == b"ST":
            index += 1
            opened = match.start(1)
        elif opened is not None:
            end = content.find(terminator, match.end())
            spans[index] = (opened, len(content) if end < 0 else end + 1)
            opened = None
    return spans


_PREAMBLE_LIMIT = 1 << 16
"""How far into a file its first ISA may start (after a byte-order mark and blank lines)."""
