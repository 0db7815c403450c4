"""The port between matching's engine and its ledger: every read and write the engine needs, in its words.

Two implementations keep the same semantics: :class:`services.matching.store.PgMatchingRepository` (SQL on
the ``matching`` schema, inside the caller's transaction, rows locked where two workers could race) and
:class:`services.matching.memory.InMemoryMatchingRepository` (dictionaries, for unit tests of the engine).
A repository decides nothing: which receivable money goes to, how much, and what is announced is the
engine's (``engine``, ``ledger``) and the pure rules' (``domain``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from contracts.events import OverpaymentDetected, ProviderAdjustmentReceived
from services.matching.domain import Balance, Candidate, Dated, PeriodPosting
from services.matching.records import (
    Displaced,
    ForwardingApplication,
    ForwardingBalance,
    Receivable,
    RecordedRefund,
    RecoveredTotals,
    RefundCredit,
    ScheduledRecovery,
    StoredPair,
)
from services.matching.work_item_repository import WorkItemRepository

Splits = dict[str, tuple[Decimal, Decimal]]
"""allocation id (text) → (to interest, to principal)."""


@dataclass(frozen=True)
class Wanted:
    """What the messages of a batch will ask the ledger for, as far as their payloads tell before any is handled
    (``prefetch.wanted``): a repository that reads ahead reads it all at once. Only a guess that saves round
    trips: every answer is asked for again when needed and must be the same whether read ahead or not."""

    receivables: tuple[tuple[str, UUID], ...] = ()
    """(tenant, receivable id) named outright: evidence, merges, interest postings."""
    lookups: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()
    """(tenant, account, candidate (kind, key)s) of the pairs that resolve their receivable by key (a WO; a 72,
    whose WO's offsets on that receivable become refunds): the receivables the first kind that names any finds
    are wanted too."""
    siblings: tuple[tuple[str, UUID, str, str], ...] = ()
    """(tenant, remittance, reference, reason code) of the sibling pairs the batch's pairs will look for."""
    accounts: tuple[tuple[str, str], ...] = ()
    """(tenant, account) whose parked recoveries and scored guesses evidence will look through."""
    payers: tuple[tuple[str, str], ...] = ()
    """(tenant, payer) whose staff actions waiting for a receivable evidence will look through."""
    remittances: tuple[tuple[str, UUID], ...] = ()
    """(tenant, remittance) whose claims netted an overpayment: evidence looks for a deferral in it."""


class ReceivableRepository(Protocol):
    """Receivables, the identifiers they are known by, and their history."""

    async def lock_receivable(self, tenant_id: str, rid: UUID) -> Receivable | None:
        """The receivable, locked for update (two workers never move money on it at once)."""

    async def open_receivable(self, tenant_id: str, account: str, op: OverpaymentDetected) -> None:
        """Insert the receivable the evidence describes, status ``open``."""

    async def note_facts(
        self,
        tenant_id: str,
        rid: UUID,
        duplicate: bool,
        original_payment_date: date | None,
        identified_on: date | None,
    ) -> None:
        """Keep the facts evidence adds: duplicate once seen, the earliest dates known."""

    async def grow(self, tenant_id: str, rid: UUID, principal: Decimal, determination_date: date) -> None:
        """Raise the principal to ``principal`` (never lower it) and move day 0 to ``determination_date``."""

    async def add_keys(
        self, tenant_id: str, account: str, rid: UUID, keys: Sequence[tuple[str, str]]
    ) -> None:
        """Know the receivable by these (kind, key) identifiers too (known ones are kept once)."""

    async def receivable_keys(self, tenant_id: str, rid: UUID) -> list[str]:
        """Every key of a receivable (reference, ICNs, patient control numbers, traces)."""

    async def resolve(
        self, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[UUID], str | None]:
        """The receivables named by the first key kind that names any: (ids, how it was found)."""

    async def find_by_key(self, tenant_id: str, payer_id: str, key: str) -> list[UUID]:
        """Live receivables of a payer known by this reference or payer claim number, any account."""

    async def open_candidates(self, tenant_id: str, account: str) -> list[Candidate]:
        """The account's live receivables still owed and not paused, oldest first."""

    async def save_balance(self, tenant_id: str, rid: UUID, balance: Balance, status: str) -> None:
        """Store a receivable's new totals (a merged receivable keeps status ``merged``)."""

    async def add_history(
        self,
        tenant_id: str,
        rid: UUID,
        event_id: UUID,
        change: str,
        amount: Decimal,
        effective: date,
        source: str,
        status: str,
        balance: Decimal,
    ) -> None:
        """One line of the receivable's timeline, once per event id."""

    async def latest_business_date(self, tenant_id: str, rids: Sequence[UUID]) -> date | None:
        """The latest business date any change of these receivables carried."""

    async def merge_into(self, tenant_id: str, absorbed: UUID, survivor: UUID, on: date) -> None:
        """Move the absorbed receivable's recoveries, identifiers, write-offs and facts to the survivor and
        close it as ``merged`` (its interest charges stay where they were posted)."""

    async def mark_written_off_in_full(self, tenant_id: str, rid: UUID, on: date) -> None:
        """Remember the latest date the whole open balance was written off."""


class PairRepository(Protocol):
    """PLB pairs and the buckets their money went to."""

    async def save_adjustment(
        self,
        tenant_id: str,
        account: str,
        adjustment_id: UUID,
        adj: ProviderAdjustmentReceived,
        *,
        match_reference: str | None,
        match_keys: list[str],
        bucket: str,
        unmatched: Decimal,
        reason: str,
        method: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        """Record a PLB pair and its bucket, once per pair."""

    async def parked_recoveries(self, tenant_id: str, account: str, keys: list[str]) -> list[StoredPair]:
        """Unmatched WO recoveries (and refunds awaiting their receivable) naming one of these keys, oldest
        first by business date (payment date, TRN02, PLB position)."""

    async def reduce_unmatched(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str, bucket: str = "allocated"
    ) -> None:
        """A parked recovery was (partly) re-matched: ``remaining`` stays unmatched; it moves to ``bucket``
        when any of it was explained."""

    async def sibling_pairs(
        self, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
    ) -> list[StoredPair]:
        """Pairs of the same remittance with the same receivable reference and code, in PLB order."""

    async def reclassify_as_refund(self, tenant_id: str, adjustment_id: UUID, reason: str) -> list[UUID]:
        """The pair acknowledges a refund: its bucket and its offset allocations become refunds. Returns the
        receivables of the allocations changed, each once, in id order."""

    async def await_refund(self, tenant_id: str, adjustment_id: UUID, amount: Decimal, reason: str) -> None:
        """Move ``amount`` of the pair's unmatched money to ``awaiting_refund``."""

    async def reduce_awaiting(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
    ) -> None:
        """A refund that waited for its receivable was (partly) applied: ``remaining`` still waits."""

    async def deferral_in(self, tenant_id: str, remittance_id: UUID, keys: list[str]) -> bool:
        """Whether the remittance holds a negative WO naming one of these keys."""

    async def displace_offsets_after(
        self, tenant_id: str, rid: UUID, after: date, amount: Decimal, reason: str
    ) -> list[Displaced]:
        """Take up to ``amount`` back from the receivable's PLB recoveries (offsets, and refunds a 72 + WO
        acknowledged) dated after ``after``, latest first by business date (payment date, TRN02, PLB position),
        into their pairs' unmatched amounts (a refund's into ``awaiting_refund``); return the pairs touched."""

    async def withdraw_guesses(
        self, tenant_id: str, account: str, rid: UUID, keys: list[str], reason: str
    ) -> list[Displaced]:
        """Take back every recovery the scored search applied to another receivable than ``rid`` although its
        reference names one of ``keys`` (``rid``'s identifiers, known now): into its pair's unmatched amount
        (a refund's into ``awaiting_refund``), no longer marked as scored; return the pairs touched with the
        receivable each left, in business-date order."""


class MoneyRepository(Protocol):
    """Allocations (every dollar applied), interest charges, and refund credits."""

    async def save_allocation(
        self,
        tenant_id: str,
        allocation_id: UUID,
        adjustment_id: UUID,
        rid: UUID,
        to_interest: Decimal,
        to_principal: Decimal,
        effective: date,
        kind: str = "offset",
        remittance_id: UUID | None = None,
    ) -> None:
        """Record which part of a pair (refund, netting) went to which receivable."""

    async def cancel_netting(self, tenant_id: str, rid: UUID, remittance_id: UUID) -> Decimal:
        """Zero the receivable's netting allocations of a remittance; return what they held."""

    async def netting_remittances(self, tenant_id: str, rid: UUID) -> list[UUID]:
        """Remittances whose claim netting still counts as recovering this receivable."""

    async def recorded_refunds(self, tenant_id: str, rid: UUID) -> list[RecordedRefund]:
        """Staff-recorded refunds no PLB pair acknowledged yet, oldest first."""

    async def hand_over_refund(
        self,
        tenant_id: str,
        recorded: RecordedRefund,
        allocation_id: UUID,
        adjustment_id: UUID,
        to_interest: Decimal,
        to_principal: Decimal,
    ) -> None:
        """Move this much interest and principal of a recorded refund onto the pair that acknowledges it (a
        new refund allocation on the same check date)."""

    async def add_interest(
        self, tenant_id: str, event_id: UUID, rid: UUID, amount: Decimal, due: date, period: int
    ) -> bool:
        """Record an interest posting of ``period`` (a charge, or a signed correction) once, held (not counted
        until :meth:`hold_interest` says so); False on a replay."""

    async def period_postings(self, tenant_id: str, rid: UUID, period: int) -> list[PeriodPosting]:
        """Every posting of one interest period of the receivable, locked."""

    async def hold_interest(self, tenant_id: str, event_ids: Sequence[UUID], held: bool) -> None:
        """These postings are held (do not count) or count, as ``held`` says."""

    async def dated_money(self, tenant_id: str, rid: UUID) -> tuple[list[Dated], list[Dated]]:
        """The receivable's interest charges (by due date) and recoveries (by effective date)."""

    async def set_splits(self, tenant_id: str, splits: Splits) -> None:
        """Store re-computed interest/principal splits of allocations."""

    async def recovery_schedule(self, tenant_id: str, rid: UUID) -> list[ScheduledRecovery]:
        """The receivable's recoveries summed per business date and kind, in date order."""

    async def recovered_totals(self, tenant_id: str, rid: UUID) -> RecoveredTotals:
        """Sums the receivable's balance is derived from."""

    async def over_recovered(self, tenant_id: str, rid: UUID) -> Decimal:
        """How much more the allocations hold than the receivable owes in all (positive only after an
        interest correction took back interest recoveries had paid)."""

    async def keep_refund_credit(
        self, tenant_id: str, action_id: UUID, rid: UUID, effective: date, amount: Decimal
    ) -> None:
        """Keep (or update) the part of a refund check above the balance known on its date."""

    async def refund_credits(self, tenant_id: str, rid: UUID, due_by: date) -> list[RefundCredit]:
        """Credits of refund checks dated on or after ``due_by``, oldest first."""


class ForwardingRepository(Protocol):
    """Forwarding balances (``FB``) and the positive pairs applied to them."""

    async def forwarding(
        self,
        tenant_id: str,
        account: str,
        reference: str,
        opened: Decimal,
        applied: Decimal,
        opened_on: date | None,
    ) -> None:
        """Open or apply a forwarding balance keyed by its reference (amounts add up; first date kept)."""

    async def forwarding_balances(self, tenant_id: str, account: str) -> list[ForwardingBalance]:
        """The account's forwarding balances, oldest first."""

    async def forwarding_applications(self, tenant_id: str, account: str) -> list[ForwardingApplication]:
        """Every positive FB pair of the account, locked, in business-date order (payment date, TRN02, PLB
        position)."""

    async def move_forwarding_application(
        self,
        tenant_id: str,
        account: str,
        adjustment_id: UUID,
        amount: Decimal,
        from_reference: str | None,
        to_reference: str,
        reason: str,
    ) -> None:
        """Re-home a positive FB's application (an emptied balance row is dropped)."""


class ActionRepository(Protocol):
    """Staff actions waiting for the receivable they name."""

    async def park_action(
        self,
        tenant_id: str,
        action_id: UUID,
        account: str,
        payer_id: str,
        reference: str,
        effective: date,
        envelope: bytes,
    ) -> None:
        """Keep a staff action whose receivable is not known yet (once per action)."""

    async def take_pending_actions(self, tenant_id: str, payer_id: str, keys: Sequence[str]) -> list[bytes]:
        """Remove and return the waiting actions naming one of these identifiers, in business-date order."""


class MatchingRepository(
    ReceivableRepository,
    PairRepository,
    MoneyRepository,
    ForwardingRepository,
    ActionRepository,
    WorkItemRepository,
    Protocol,
):
    """Everything the matching engine reads and writes."""

    async def prefetch(self, wanted: Wanted) -> None:
        """Read ahead what a batch's messages will ask for (a repository that answers each call as it comes
        ignores it)."""

    async def flush(self) -> None:
        """Write whatever the repository kept back (a batch's repository keeps writes back to send them together,
        see ``store.batch``). The stage calls it once its batch is handled, before the transaction commits."""
