"""The ledger moves every matching path shares: move money onto a receivable (interest first, re-split by
business date), announce the receivable's change, and record the offset event of a PLB pair.
"""

import logging
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope
from contracts.events import (
    AlertRaised,
    Allocation,
    DatedRecovery,
    OffsetRecorded,
    ProviderAdjustmentReceived,
    ReceivableChanged,
)
from contracts.money import ZERO
from contracts.references import ReferenceLayout
from contracts.topics import OFFSETS, RECEIVABLES
from policies.config import PolicyConfigError, PolicyResolver
from services.matching import domain, metrics
from services.matching.records import Receivable
from services.matching.repository import MatchingRepository, Splits
from shared import envelopes, phi
from shared.alerts import alert_message
from shared.ids import stable_id
from shared.messages import Outgoing
from shared.settings import Settings

log = logging.getLogger(__name__)


EVENT_TYPES = {
    "allocated": "OffsetApplied",
    "unmatched": "OffsetUnmatched",
    "deferral": "RecoveryDeferred",
    "refund_acknowledged": "RefundAcknowledged",
    "non_offset": "NonOffsetRecorded",
}
CLOSING_CHANGES = {
    "settled": "ReceivableSettled",
    "refunded": "ReceivableRefunded",
    "written_off": "ReceivableWrittenOff",
}


@dataclass(frozen=True)
class Matching:
    """The matching stage as its steps see it: its settings, the payer policies configured at start-up, and
    the repository of its ledger (PostgreSQL in the service, dictionaries in unit tests). Nothing else is
    shared: there is no module state, so a test builds one with the settings and policies it needs."""

    settings: Settings
    policies: PolicyResolver[Any]
    repo: MatchingRepository

    def interest_first(self, row: Receivable) -> bool:
        """Recovery order of the receivable's payer policy as configured for its tenant (Medicare: accrued
        interest before principal); a policy that is not installed keeps DOMAIN.md's interest-first rule."""
        try:
            policy = self.policies.resolve(row.tenant_id, row.payer_id)
        except PolicyConfigError:
            return True
        return getattr(policy, "recovery_order", "interest_first") != "principal_first"

    def reference_layout(self, tenant: str, payer: str) -> ReferenceLayout | None:
        """The payer's reference layout for quoting a reference outside (see :func:`reference_layout`)."""
        return reference_layout(self.policies, tenant, payer)


def build_stage(settings: Settings, policies: PolicyResolver[Any], repo: MatchingRepository) -> Matching:
    """The matching stage over one repository (one connection's transaction, or an in-memory ledger)."""
    return Matching(settings, policies, repo)


async def announce(
    m: Matching,
    source: Envelope[Any],
    row: Receivable,
    after: domain.Balance,
    change: str,
    amount: Decimal,
    effective: date,
    cause: str,
    recovery_kind: str | None = None,
    *,
    money_key: UUID | None = None,
    causation: str | None = None,
) -> Outgoing:
    """Write the receivable's history line and its ReceivableChanged event (closing changes named as such).

    One source event can move one receivable several times (a letter that re-matches two parked recoveries):
    ``money_key`` (the parked PLB pair) keeps those changes' event ids apart, or downstream stages would take
    the second for a replay of the first and drop it. ``causation`` names the offset that moved the money
    when it is not the source event itself, so notification can join the change to its offset.
    """
    status = "merged" if row.merged_into is not None else domain.status_of(after)
    if change == "ReceivableReduced" and status in CLOSING_CHANGES:
        change = CLOSING_CHANGES[status]
    rid = row.receivable_id
    event_id = (
        stable_id(source.event_id, change, rid)
        if money_key is None
        else stable_id(source.event_id, change, rid, money_key)
    )
    await m.repo.add_history(
        source.tenant_id, rid, event_id, change, amount, effective, cause, status, max(after.open, ZERO)
    )
    payload = ReceivableChanged(
        receivable_id=rid,
        payer_id=row.payer_id,
        reference=row.reference,
        status=status,
        policy=row.policy,
        determination_date=row.determination_date,
        effective_date=effective,
        change_amount=amount,
        principal=after.principal,
        principal_recovered=after.principal_recovered,
        interest_accrued=after.interest_accrued,
        interest_recovered=after.interest_recovered,
        refunded=after.refunded,
        written_off=after.written_off,
        paused=after.paused,
        balance=max(after.open, ZERO),
        source=cause,
        recovery_kind=recovery_kind,
        recovery_schedule=tuple(
            DatedRecovery(
                kind=r.kind,
                effective_date=r.effective_date,
                to_interest=r.to_interest,
                to_principal=r.to_principal,
            )
            for r in await m.repo.recovery_schedule(source.tenant_id, rid)
        ),
        original_payment_date=row.original_payment_date,
        duplicate=row.duplicate,
        identified_on=row.identified_on,
    )
    metrics.RECEIVABLE_CHANGES.labels(change).inc()
    return Outgoing.event(
        RECEIVABLES,
        envelopes.build(
            payload,
            event_id=event_id,
            event_type=change,
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=causation or str(source.event_id),
        ),
    )


def reference_layout(policies: PolicyResolver[Any], tenant: str, payer: str) -> ReferenceLayout | None:
    """The payer's reference layout for quoting a reference outside (``shared.phi``); None — quote
    conservatively — when its policy cannot be resolved."""
    try:
        return policies.reference_layout(tenant, payer)
    except PolicyConfigError:
        return None


def alert(
    source: Envelope[Any],
    subject: object,
    kind: str,
    payer: str,
    reference: str | None,
    amount: Decimal | None,
    observed: date,
    detail: str,
    layout: ReferenceLayout | None,
) -> Outgoing:
    """An AlertRaised event, once per (subject, kind), through the outbound scrubber (``shared.phi``), which
    quotes the reference by the payer's ``layout`` (:func:`reference_layout`)."""
    payload = AlertRaised(
        alert_id=stable_id(subject, kind),
        kind=kind,
        payer_id=payer,
        reference=reference,
        amount=amount,
        observed_on=observed,
        detail=detail,
    )
    return alert_message(
        phi.safe_alert(payload, layout),
        tenant_id=source.tenant_id,
        account_key=source.account_key,
        causation_id=str(source.event_id),
    )


async def resplit(m: Matching, tenant: str, row: Receivable) -> tuple[domain.Balance, Splits]:
    """Re-split every recovery of the receivable interest-first *in business-date order* and store the totals.

    Whether a dollar paid interest or principal depends on what interest was due on the day it was taken, not
    on when our services happened to see the charge: this keeps the ledger identical under replays, late
    files and interest ticks that run ahead of a backlog.
    """
    rid = row.receivable_id
    charges, recoveries = await m.repo.dated_money(tenant, rid)
    # A write-off of the whole open balance covers interest too, so it cannot cap the principal recoveries
    # dated before it paid; a partial write-off (an amount staff chose) lowers the principal still to recover.
    cap = row.principal if row.written_off_in_full is not None else row.principal - row.written_off
    splits = domain.split_in_date_order(charges, recoveries, cap, interest_first=m.interest_first(row))
    await m.repo.set_splits(tenant, splits)
    totals = await m.repo.recovered_totals(tenant, rid)
    after = replace(
        row.balance,
        principal_recovered=totals.principal_recovered,
        interest_recovered=totals.interest_recovered,
        interest_accrued=totals.interest_accrued,
        refunded=totals.refunded,
    )
    if row.written_off_in_full is not None and after.open < 0:
        # Written off in full, then interest the write-off covered was reversed (a later determination date
        # moved the period out): the write-off covered only what was open, so it shrinks with it.
        after = replace(after, written_off=max(after.written_off + after.open, ZERO))
    await m.repo.save_balance(tenant, rid, after, domain.status_of(after))
    return after, splits


async def apply_money(
    m: Matching,
    source: Envelope[Any],
    money_id: UUID,
    row: Receivable,
    amount: Decimal,
    effective: date,
    cause: str,
    *,
    kind: str = "offset",
    remittance_id: UUID | None = None,
    rematch: UUID | None = None,
) -> tuple[domain.Application, Allocation, list[Outgoing]]:
    """Apply an amount (offset or refund) to one receivable: allocation row, new balance, history, events.

    Money withheld while an appeal pauses recoupment is still applied (it was taken). Flagging it is the
    interest stage's job alone (``recoupment_during_pause``, one alert per recovery): it holds the pause
    intervals, so an appeal recorded late, back-dated before a recoupment already applied, is flagged too.
    ``rematch`` is the id of the re-match offset when a parked recovery is applied later (see :func:`announce`).
    """
    provisional = domain.apply_recovery(amount, row.balance, interest_first=m.interest_first(row))
    rid = row.receivable_id
    allocation_id = stable_id(money_id, "allocation", rid, source.event_id)
    await m.repo.save_allocation(
        source.tenant_id,
        allocation_id,
        money_id,
        rid,
        provisional.to_interest,
        provisional.to_principal,
        effective,
        kind,
        remittance_id,
    )
    after, splits = await resplit(m, source.tenant_id, row)
    to_interest, to_principal = splits[str(allocation_id)]
    applied = domain.Application(to_interest, to_principal, provisional.remainder)
    metrics.RECOVERED_DOLLARS.labels(row.policy, "interest").inc(float(applied.to_interest))
    metrics.RECOVERED_DOLLARS.labels(row.policy, "principal").inc(float(applied.to_principal))
    outputs = [
        await announce(
            m,
            source,
            row,
            after,
            "ReceivableReduced",
            applied.applied,
            effective,
            cause,
            "offset" if kind == "netting" else kind,
            money_key=money_id if rematch is not None else None,
            causation=str(rematch) if rematch is not None else None,
        )
    ]
    allocation = Allocation(
        receivable_id=rid,
        reference=row.reference,
        to_interest=applied.to_interest,
        to_principal=applied.to_principal,
    )
    return applied, allocation, outputs


def offset_event(
    source: Envelope[Any],
    adj: ProviderAdjustmentReceived,
    offset_id: UUID,
    bucket: str,
    reason: str,
    allocations: tuple[Allocation, ...],
    unmatched: Decimal,
    event_type: str | None = None,
    rematch_of: UUID | None = None,
) -> Outgoing:
    """The OffsetRecorded event of one PLB pair (or of a later re-match of it, naming the original offset)."""
    payload = OffsetRecorded(
        offset_id=offset_id,
        remittance_id=adj.remittance_id,
        payer_id=adj.payer_id,
        trace_number=adj.trace_number,
        payment_date=adj.payment_date,
        segment_ordinal=adj.segment_ordinal,
        pair_index=adj.pair_index,
        reason_code=adj.reason_code,
        reference=adj.reference,
        amount=adj.amount,
        bucket=bucket,
        allocations=allocations,
        unmatched_amount=unmatched,
        reason=reason,
        rematch_of=rematch_of,
    )
    metrics.OFFSETS.labels(bucket).inc()
    metrics.OFFSET_DOLLARS.labels(bucket).inc(float(abs(adj.amount)))
    return Outgoing.event(
        OFFSETS,
        envelopes.build(
            payload,
            event_id=offset_id,
            event_type=event_type or EVENT_TYPES.get(bucket, "ForwardingBalanceOpened"),
            tenant_id=source.tenant_id,
            account_key=source.account_key,
            causation_id=str(source.event_id),
        ),
    )
