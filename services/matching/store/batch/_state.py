"""What one run of one batch keeps (the rows it read and locked, the writes it held back) and how it writes
them: one statement per table (see the package docstring)."""

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.matching.domain import Candidate
from services.matching.memory import rows
from services.matching.memory._tables import AllocationRow, InterestCharge
from services.matching.records import Receivable, StoredPair
from services.matching.store import PgMatchingRepository

Key = tuple[str, str, str, str]
"""(tenant, account, kind, key): what ``resolve`` looks a receivable up by."""
Row = tuple[str, UUID]
"""(tenant, id) of a receivable, allocation, pair or charge."""
Place = tuple[str, int, int]
"""A stored pair's (TRN02, PLB position, pair index): its recoveries' rank."""

RECEIVABLES, KEYS, HISTORY, PAIRS, ALLOCATIONS = "receivables", "keys", "history", "pairs", "allocations"
"""The tables a batch holds writes back for, as :meth:`BatchState.flush` names them."""
EVERY_TABLE = (RECEIVABLES, KEYS, HISTORY, PAIRS, ALLOCATIONS)

RECEIVABLE_TYPES = (
    ("tenant_id", "text"),
    ("receivable_id", "uuid"),
    ("account_key", "text"),
    ("payer_id", "text"),
    ("reference", "text"),
    ("policy", "text"),
    ("determination_date", "date"),
    ("principal", "numeric"),
    ("principal_recovered", "numeric"),
    ("interest_accrued", "numeric"),
    ("interest_recovered", "numeric"),
    ("refunded", "numeric"),
    ("written_off", "numeric"),
    ("paused", "boolean"),
    ("status", "text"),
    ("original_payment_date", "date"),
    ("duplicate", "boolean"),
    ("identified_on", "date"),
    ("merged_into", "uuid"),
    ("merged_on", "date"),
    ("written_off_in_full", "date"),
)
"""Every column of ``matching.receivables`` with its type, in :class:`Receivable`'s field order."""
PAIR_TYPES = (
    ("tenant_id", "text"),
    ("adjustment_id", "uuid"),
    ("account_key", "text"),
    ("remittance_id", "uuid"),
    ("payer_id", "text"),
    ("trace_number", "text"),
    ("payment_date", "date"),
    ("segment_ordinal", "integer"),
    ("pair_index", "integer"),
    ("reason_code", "text"),
    ("reference", "text"),
    ("match_reference", "text"),
    ("amount", "numeric"),
    ("bucket", "text"),
    ("unmatched_amount", "numeric"),
    ("reason", "text"),
    ("match_method", "text"),
    ("suggestion", "text"),
    ("awaiting_refund", "numeric"),
)
"""The columns of a pair the batch writes but its keys (an array column, sent as JSON), in :class:`StoredPair`'s
names: those ``save_adjustment`` writes, and the money awaiting a refund (a pair held back may have some)."""
PAIR_CHANGE_TYPES = (
    ("tenant_id", "text"),
    ("adjustment_id", "uuid"),
    ("unmatched_amount", "numeric"),
    ("awaiting_refund", "numeric"),
    ("bucket", "text"),
    ("reason", "text"),
    ("match_method", "text"),
)
"""The key of a stored pair and every column the port's changes to a pair write (``reduce_unmatched``,
``await_refund``, ``reduce_awaiting``, ``reclassify_as_refund``)."""
ALLOCATION_TYPES = (
    ("tenant_id", "text"),
    ("allocation_id", "uuid"),
    ("adjustment_id", "uuid"),
    ("receivable_id", "uuid"),
    ("to_interest", "numeric"),
    ("to_principal", "numeric"),
    ("effective_date", "date"),
    ("kind", "text"),
    ("remittance_id", "uuid"),
)
"""Every column of ``matching.allocations``, in :class:`AllocationRow`'s field order."""


def _names(types: Sequence[tuple[str, str]]) -> str:
    return ", ".join(name for name, _ in types)


def _unnested(types: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(types, start=1))


def _columns(types: Sequence[tuple[str, str]], kept: Sequence[object]) -> list[list[Any]]:
    """The rows as one array per column (the parameters of an ``unnest``)."""
    return [[getattr(row, name) for row in kept] for name, _ in types]


class BatchState(PgMatchingRepository):
    """The state of one run of one batch, and the statements that write it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self.rows: dict[Row, Receivable] = {}
        """Receivables this batch locked or opened, as they stand now."""
        self.absent: set[Row] = set()
        """Receivables read ahead and not found (none opened them since)."""
        self.opened: list[Row] = []
        """Receivables opened by this batch and not inserted yet, in the order opened."""
        self.changed: set[Row] = set()
        """Kept receivables changed since they were read or last written."""
        self.new_keys: list[tuple[str, str, str, str, UUID]] = []
        self.history: list[tuple[str, UUID, UUID, str, Decimal, date, str, str, Decimal]] = []
        self.named: dict[Key, set[UUID]] = {}
        """What the ledger answered (plus keys written since) for a key ``resolve`` looked up."""
        self.candidates: dict[tuple[str, str], list[Candidate]] = {}
        """What the ledger answered for an account's ``open_candidates`` since receivables and keys were last
        written (the batch's changes are laid over it)."""
        self.keys_of: dict[Row, set[str]] = {}
        """What the ledger answered (plus keys written since) for a receivable's keys."""
        self.money: dict[Row, dict[UUID, AllocationRow]] = {}
        """The allocations of kept receivables whose money was read, by allocation id."""
        self.charges: dict[Row, dict[UUID, InterestCharge]] = {}
        """The interest postings of the same receivables, by event id."""
        self.owner: dict[Row, Row] = {}
        """(tenant, allocation id) → (tenant, receivable id), for the allocations in :attr:`money`."""
        self.places: dict[Row, Place] = {}
        """Where each pair known to be stored sits (a pair never moves once stored)."""
        self.new_allocations: list[Row] = []
        """Allocations saved by this batch and not inserted yet."""
        self.moved: set[Row] = set()
        """Stored allocations whose split this batch changed and did not write yet."""
        self.new_pairs: dict[Row, StoredPair] = {}
        """Pairs saved by this batch and not inserted yet, in the order saved."""
        self.seen: dict[Row, StoredPair] = {}
        """Every stored pair the batch read from the ledger (locked) or wrote, as it stands now: a change to one
        of them is held back (:attr:`pair_changes`) instead of sent."""
        self.pair_changes: set[Row] = set()
        """Stored pairs this batch changed and did not write yet (their rows are in :attr:`seen`)."""
        self.siblings: dict[tuple[str, UUID, str, str], list[StoredPair]] = {}
        """What the ledger answered for ``sibling_pairs`` (locked)."""
        self.parked: dict[tuple[str, str], list[StoredPair]] = {}
        """An account's parked recoveries (WO pairs with money unmatched or awaiting a refund), read ahead and
        locked, plus those the batch stored since."""
        self.guessed: dict[tuple[str, str], list[tuple[frozenset[str], UUID, UUID]]] = {}
        """An account's recoveries the scored search applied, read ahead: (the pair's keys, the receivable, the
        pair)."""
        self.scored: set[tuple[str, str]] = set()
        """Accounts with a pair the scored search matched in this batch (their guesses are asked in SQL)."""
        self.deferrals: dict[tuple[str, UUID], list[frozenset[str]]] = {}
        """The keys of a remittance's negative WO pairs, read ahead, plus those stored since (none of the
        columns asked about ever changes)."""
        self.waiting: dict[tuple[str, str], set[str]] = {}
        """The references a payer's staff actions wait under, read ahead, plus those parked since."""

    async def forget_money(self) -> None:
        """A statement changed allocations, pairs or postings in the ledger: write what is held back (what the
        statement's method saved through this repository, too) and read them again when needed."""
        await self.flush()
        self.money.clear()
        self.charges.clear()
        self.owner.clear()
        self.seen.clear()
        self.siblings.clear()
        self.parked.clear()
        self.guessed.clear()

    def remember(self, pairs: list[StoredPair]) -> list[StoredPair]:
        """Keep the pairs just read from the ledger (locked) as they stand: the ledger had every change the batch
        made to them, since every read of pairs writes what is held back for them first."""
        for pair in pairs:
            self.seen[pair.tenant_id, pair.adjustment_id] = pair
        return pairs

    def repair(self, tenant_id: str, changed: StoredPair) -> None:
        """A pair changed (held back, or in the ledger by a statement that changes nothing else): the copies read
        ahead change alike (a re-matched pair is no scored guess any more, one that waits for money now joins
        its account's parked recoveries read ahead)."""
        row = (tenant_id, changed.adjustment_id)
        if row in self.seen:  # stored (a pair held back joins what is read ahead when written)
            self.seen[row] = changed
            queue = self.parked.get((tenant_id, changed.account_key))
            if (
                queue is not None
                and rows.parked(changed)
                and row not in {(p.tenant_id, p.adjustment_id) for p in queue}
            ):
                queue.append(changed)
        for kept in (*self.siblings.values(), *self.parked.values()):
            for n, pair in enumerate(kept):
                if pair.adjustment_id == changed.adjustment_id and pair.tenant_id == tenant_id:
                    kept[n] = changed
        if changed.match_method == "rematch":
            for guesses in self.guessed.values():
                guesses[:] = [g for g in guesses if g[2] != changed.adjustment_id]

    def copy_of(self, tenant_id: str, adjustment_id: UUID) -> StoredPair | None:
        """The stored pair as it stands now, if the batch read or wrote it."""
        return self.seen.get((tenant_id, adjustment_id))

    def forget_money_of(self, row: Row) -> None:
        """A statement changed one receivable's allocations (and nothing else): read them again when needed."""
        for allocation in self.money.pop(row, {}):
            self.owner.pop((row[0], allocation), None)
        self.charges.pop(row, None)

    def allocation(self, allocation: Row) -> AllocationRow:
        """A kept allocation."""
        return self.money[self.owner[allocation]][allocation[1]]

    async def look_up(self, wanted: Sequence[tuple[str, str, str, str]]) -> None:
        """Read which receivables the ledger knows by each of these (tenant, account, kind, key), in one
        statement, unless known already."""
        unknown = list(dict.fromkeys(k for k in wanted if k not in self.named))
        if not unknown:
            return
        for k in unknown:
            self.named[k] = set()
        for r in await self.conn.fetch(
            """SELECT DISTINCT k.tenant_id, k.account_key, k.kind, k.key, k.receivable_id
               FROM matching.receivable_keys k
               JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(tenant_id, account_key, kind, key)
                 ON k.tenant_id = c.tenant_id AND k.account_key = c.account_key AND k.kind = c.kind
                    AND k.key = c.key""",
            *map(list, zip(*unknown, strict=True)),
        ):
            self.named[r["tenant_id"], r["account_key"], r["kind"], r["key"]].add(r["receivable_id"])

    async def read_keys(self, wanted: Sequence[Row]) -> None:
        """Every key of these receivables (those evidence names, read ahead; one ``open_candidates`` lists after
        the batch opened it or changed it, since the ledger aggregates them into its answer)."""
        if not wanted:
            return
        for row in wanted:
            self.keys_of[row] = set()
        for r in await self.conn.fetch(
            """SELECT tenant_id, receivable_id, key FROM matching.receivable_keys
               WHERE (tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))""",
            [t for t, _ in wanted],
            [rid for _, rid in wanted],
        ):
            self.keys_of[r["tenant_id"], r["receivable_id"]].add(r["key"])

    async def load_money(self, wanted: Sequence[Row]) -> None:
        """Read the allocations (with their pairs' places) and interest postings of these kept receivables."""
        wanted = [r for r in dict.fromkeys(wanted) if r not in self.money]
        if not wanted:
            return
        tenants, ids = [t for t, _ in wanted], [rid for _, rid in wanted]
        for row in wanted:
            self.money[row] = {}
            self.charges[row] = {}
        for r in await self.conn.fetch(
            """SELECT l.tenant_id, l.allocation_id, l.adjustment_id, l.receivable_id, l.to_interest, l.to_principal,
                      l.effective_date, l.kind, l.remittance_id, a.trace_number, a.segment_ordinal, a.pair_index
               FROM matching.allocations l LEFT JOIN matching.adjustments a
                 ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
               WHERE (l.tenant_id, l.receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
               ORDER BY l.tenant_id, l.receivable_id, l.allocation_id""",
            tenants,
            ids,
        ):
            row = (r["tenant_id"], r["receivable_id"])
            self.money[row][r["allocation_id"]] = AllocationRow(*(r[name] for name, _ in ALLOCATION_TYPES))
            self.owner[r["tenant_id"], r["allocation_id"]] = row
            if r["trace_number"] is not None:
                place = (r["trace_number"], r["segment_ordinal"], r["pair_index"])
                self.places[r["tenant_id"], r["adjustment_id"]] = place
        for r in await self.conn.fetch(
            """SELECT tenant_id, event_id, receivable_id, amount, due_date, period_number, held
               FROM matching.interest_charges
               WHERE (tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
               ORDER BY tenant_id, receivable_id, event_id""",
            tenants,
            ids,
        ):
            self.charges[r["tenant_id"], r["receivable_id"]][r["event_id"]] = InterestCharge(
                r["receivable_id"], r["amount"], r["due_date"], r["period_number"], r["held"]
            )

    def placed(self, pairs: list[StoredPair]) -> list[StoredPair]:
        """Remember where these stored pairs sit (TRN02, PLB position, pair index): a recovery the batch applies
        from one of them (a parked pair re-matched) ranks among same-day money by it, as the ledger's join
        ranks it; unknown, it would rank as staff money."""
        for p in pairs:
            self.places.setdefault((p.tenant_id, p.adjustment_id), p.place)
        return pairs

    async def flush(self, *tables: str) -> None:
        """Write what the batch kept back for these tables (every table when none is named), one statement per
        table and kind of write: receivables opened and changed, keys, history lines, pairs, allocations saved
        and re-split. The batch handler calls it last; a read that needs rows in a table calls it first for
        that table (the tables share no foreign key or trigger, so they can be written apart)."""
        tables = tables or EVERY_TABLE
        if RECEIVABLES in tables:
            await self._flush_receivables()
        if KEYS in tables and self.new_keys:
            self.candidates.clear()
            await self.conn.execute(
                """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[])
                   ON CONFLICT DO NOTHING""",
                *map(list, zip(*self.new_keys, strict=True)),
            )
            for tenant, account, kind, key, rid in self.new_keys:
                self.named.get((tenant, account, kind, key), set()).add(rid)
                self.keys_of.get((tenant, rid), set()).add(key)
            self.new_keys.clear()
        if HISTORY in tables and self.history:
            await self.conn.execute(
                """INSERT INTO matching.receivable_history (tenant_id, receivable_id, event_id, change, amount,
                       effective_date, source, status, balance)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[],
                                        $6::date[], $7::text[], $8::text[], $9::numeric[])
                   ON CONFLICT DO NOTHING""",
                *map(list, zip(*self.history, strict=True)),
            )
            self.history.clear()
        if PAIRS in tables and self.new_pairs:
            await self._write_pairs(list(self.new_pairs.values()))
            self.seen.update(self.new_pairs)
            for (tenant, _), pair in self.new_pairs.items():  # now in the table, so among the siblings read
                asked = (tenant, pair.remittance_id, pair.match_reference or "", pair.reason_code)
                known = self.siblings.get(asked)
                if known is not None and pair.adjustment_id not in {p.adjustment_id for p in known}:
                    known.append(pair)
                if rows.deferral(pair):
                    self.deferrals.get((tenant, pair.remittance_id), []).append(frozenset(pair.match_keys))
                queue = self.parked.get((tenant, pair.account_key))
                if (
                    queue is not None
                    and rows.parked(pair)
                    and pair.adjustment_id not in {p.adjustment_id for p in queue}
                ):
                    queue.append(pair)
            self.new_pairs.clear()
        if PAIRS in tables and self.pair_changes:
            await self._write_pair_changes([self.seen[p] for p in sorted(self.pair_changes)])
            self.pair_changes.clear()
        if ALLOCATIONS in tables:
            await self._write_allocations()

    async def _flush_receivables(self) -> None:
        if self.opened or self.changed:
            self.candidates.clear()
        if self.opened:
            await self._write_receivables([self.rows[r] for r in self.opened], insert=True)
            self.changed.difference_update(self.opened)
            self.opened.clear()
        if self.changed:
            await self._write_receivables([self.rows[r] for r in sorted(self.changed)], insert=False)
            self.changed.clear()

    async def _write_receivables(self, kept: Sequence[Receivable], *, insert: bool) -> None:
        columns = _columns(RECEIVABLE_TYPES, kept)
        names, unnested = _names(RECEIVABLE_TYPES), _unnested(RECEIVABLE_TYPES)
        if insert:
            await self.conn.execute(
                f"INSERT INTO matching.receivables ({names}) SELECT * FROM unnest({unnested})",  # noqa: S608
                *columns,
            )
            return
        changed = ", ".join(f"{name} = u.{name}" for name, _ in RECEIVABLE_TYPES[2:])
        await self.conn.execute(
            f"""UPDATE matching.receivables r SET {changed} FROM unnest({unnested}) AS u({names})
                WHERE r.tenant_id = u.tenant_id AND r.receivable_id = u.receivable_id""",  # noqa: S608
            *columns,
        )

    async def _write_pairs(self, pairs: Sequence[StoredPair]) -> None:
        """The pairs saved, in the order saved; each pair's keys travel as a JSON array (an array column cannot
        be one element of an ``unnest`` parameter)."""
        names = _names(PAIR_TYPES)
        keys = f"${len(PAIR_TYPES) + 1}::jsonb[]"
        await self.conn.execute(
            f"""INSERT INTO matching.adjustments ({names}, match_keys)
                SELECT {names}, ARRAY(SELECT jsonb_array_elements_text(u.keys))
                FROM unnest({_unnested(PAIR_TYPES)}, {keys}) AS u({names}, keys)
                ON CONFLICT DO NOTHING""",  # noqa: S608 (fixed column lists)
            *_columns(PAIR_TYPES, pairs),
            [json.dumps(list(p.match_keys)) for p in pairs],
        )

    async def _write_pair_changes(self, pairs: Sequence[StoredPair]) -> None:
        """Stored pairs as the batch's changes left them (one ``UPDATE`` of the columns those changes write)."""
        names = _names(PAIR_CHANGE_TYPES)
        changed = ", ".join(f"{name} = u.{name}" for name, _ in PAIR_CHANGE_TYPES[2:])
        await self.conn.execute(
            f"""UPDATE matching.adjustments a SET {changed} FROM unnest({_unnested(PAIR_CHANGE_TYPES)}) AS u({names})
                WHERE a.tenant_id = u.tenant_id AND a.adjustment_id = u.adjustment_id""",  # noqa: S608
            *_columns(PAIR_CHANGE_TYPES, pairs),
        )

    async def _write_allocations(self) -> None:
        """Allocations saved (one ``INSERT``, with the split they ended the batch with) and stored ones whose
        split changed (one ``UPDATE``)."""
        if self.new_allocations:
            added = [self.allocation(a) for a in self.new_allocations]
            await self.conn.execute(
                f"""INSERT INTO matching.allocations ({_names(ALLOCATION_TYPES)})
                    SELECT * FROM unnest({_unnested(ALLOCATION_TYPES)})""",  # noqa: S608 (fixed columns)
                *_columns(ALLOCATION_TYPES, added),
            )
            self.moved.difference_update(self.new_allocations)
            self.new_allocations.clear()
        if self.moved:
            split = [self.allocation(a) for a in sorted(self.moved)]
            await self.conn.execute(
                """UPDATE matching.allocations l SET to_interest = u.to_interest, to_principal = u.to_principal
                   FROM unnest($1::text[], $2::uuid[], $3::numeric[], $4::numeric[])
                       AS u(tenant_id, allocation_id, to_interest, to_principal)
                   WHERE l.tenant_id = u.tenant_id AND l.allocation_id = u.allocation_id""",
                [a.tenant_id for a in split],
                [a.allocation_id for a in split],
                [a.to_interest for a in split],
                [a.to_principal for a in split],
            )
            self.moved.clear()
