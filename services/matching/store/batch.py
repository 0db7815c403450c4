"""The PostgreSQL repository as one batch of the matching stage uses it: the same SQL, fewer round trips.

The stage handles a batch of messages in one transaction on one connection (``shared.messages.BatchHandler``),
the engine still one message at a time. Most of the statements a message used to send re-read what an earlier
message of the batch had just read or written (the receivable it locked, the keys of a receivable opened a
moment before) or wrote one row that nothing reads until the batch ends (a history line, a key). A
:class:`BatchMatchingRepository` lives for one run of one batch and

* locks a receivable once (``SELECT ... FOR UPDATE``; the lock is held to commit, as before) and keeps the row:
  later locks of the batch are answered from memory, and the writes the port makes to it (``open_receivable``,
  ``note_facts``, ``grow``, ``save_balance``, ``mark_written_off_in_full``) change the kept row by the rules of
  ``memory.rows`` and are written once per row when the batch ends: one ``INSERT`` for the receivables the
  batch opened, one ``UPDATE ... FROM unnest`` for those it changed;
* buffers the insert-only rows of ``receivable_keys`` and ``receivable_history`` and writes each table's rows
  in one statement, in the order they came (the history's ``seq`` numbers them as the one-by-one inserts did);
* answers ``resolve`` (every candidate key of a pair in one statement instead of one per key kind) and
  ``receivable_keys`` from what the ledger held when first asked plus the keys the batch added since.

Whatever else reads these tables in SQL (``open_candidates``, ``find_by_key``, ``latest_business_date``,
``over_recovered``) or changes them in ways not mirrored here (``merge_into``) first writes everything kept back
(:meth:`BatchMatchingRepository.flush`), so every read sees every earlier write of the batch as the
per-message version did. A write the database would refuse (a balance below zero) is sent as its own statement
at once, so it fails on the message that made it. State lives in the instance: the batch handler makes one
per run, so a run that fails and is re-run (the runtime's isolation of a failing input) starts from the ledger,
never from what the failed run kept.
"""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

import asyncpg

from contracts.events import OverpaymentDetected
from services.matching.domain import Balance, Candidate
from services.matching.memory import rows
from services.matching.records import Receivable
from services.matching.store import PgMatchingRepository

Key = tuple[str, str, str, str]
"""(tenant, account, kind, key): what ``resolve`` looks a receivable up by."""
Row = tuple[str, UUID]
"""(tenant, receivable id)."""

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
COLUMNS = ", ".join(name for name, _ in RECEIVABLE_TYPES)
UNNESTED = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(RECEIVABLE_TYPES, start=1))
CHANGED = ", ".join(f"{name} = u.{name}" for name, _ in RECEIVABLE_TYPES[2:])


def _columns(kept: Sequence[Receivable]) -> list[list[object]]:
    """The rows as one array per column (the parameters of an ``unnest``)."""
    return [[getattr(row, name) for row in kept] for name, _ in RECEIVABLE_TYPES]


class BatchMatchingRepository(PgMatchingRepository):
    """The matching ledger for one run of one batch: receivables locked once and written once, insert-only rows
    buffered, lookups by key answered from what the batch already knows (see the module docstring)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self._rows: dict[Row, Receivable] = {}
        """Receivables this batch locked or opened, as they stand now."""
        self._opened: list[Row] = []
        """Receivables opened by this batch and not inserted yet, in the order opened."""
        self._changed: set[Row] = set()
        """Kept receivables changed since they were read or last written."""
        self._new_keys: list[tuple[str, str, str, str, UUID]] = []
        self._history: list[tuple[str, UUID, UUID, str, Decimal, date, str, str, Decimal]] = []
        self._named: dict[Key, set[UUID]] = {}
        """What the ledger answered (plus keys written since) for a key ``resolve`` looked up."""
        self._keys_of: dict[Row, set[str]] = {}
        """What the ledger answered (plus keys written since) for a receivable's keys."""

    # --- receivables -----------------------------------------------------------------------------------------

    async def lock_receivable(self, tenant_id: str, rid: UUID) -> Receivable | None:
        kept = self._rows.get((tenant_id, rid))
        if kept is not None:
            return kept
        row = await super().lock_receivable(tenant_id, rid)
        if row is not None:
            self._rows[tenant_id, rid] = row
        return row

    async def open_receivable(self, tenant_id: str, account: str, op: OverpaymentDetected) -> None:
        row = rows.opened(tenant_id, account, op)
        if (tenant_id, op.receivable_id) in self._rows or rows.refused(row):
            await self.flush()  # the database refuses it on this message, as it did
            await super().open_receivable(tenant_id, account, op)
            return
        self._rows[tenant_id, op.receivable_id] = row
        self._opened.append((tenant_id, op.receivable_id))

    async def note_facts(
        self,
        tenant_id: str,
        rid: UUID,
        duplicate: bool,
        original_payment_date: date | None,
        identified_on: date | None,
    ) -> None:
        kept = self._rows.get((tenant_id, rid))
        if kept is None:
            await super().note_facts(tenant_id, rid, duplicate, original_payment_date, identified_on)
        else:
            await self._change(kept, rows.with_facts(kept, duplicate, original_payment_date, identified_on))

    async def grow(self, tenant_id: str, rid: UUID, principal: Decimal, determination_date: date) -> None:
        kept = self._rows.get((tenant_id, rid))
        if kept is None:
            await super().grow(tenant_id, rid, principal, determination_date)
        else:
            await self._change(kept, rows.grown(kept, principal, determination_date))

    async def save_balance(self, tenant_id: str, rid: UUID, balance: Balance, status: str) -> None:
        kept = self._rows.get((tenant_id, rid))
        if kept is None:
            await super().save_balance(tenant_id, rid, balance, status)
        else:
            await self._change(kept, rows.balanced(kept, balance, status))

    async def mark_written_off_in_full(self, tenant_id: str, rid: UUID, on: date) -> None:
        kept = self._rows.get((tenant_id, rid))
        if kept is None:
            await super().mark_written_off_in_full(tenant_id, rid, on)
        else:
            await self._change(kept, rows.written_off_in_full(kept, on))

    async def _change(self, kept: Receivable, changed: Receivable) -> None:
        """Keep the changed row to write at the end; a change the database refuses is written now, the
        statement that fails named the message that made it (the kept row stays as it was)."""
        row = (kept.tenant_id, kept.receivable_id)
        if rows.refused(changed):
            await self.flush()
            await self._write_receivables([changed], insert=False)
            return  # not reached while the check holds; kept for a database without it
        self._rows[row] = changed
        self._changed.add(row)

    async def merge_into(self, tenant_id: str, absorbed: UUID, survivor: UUID, on: date) -> None:
        await self.flush()
        await super().merge_into(tenant_id, absorbed, survivor, on)
        # The merge moved keys and changed both rows in SQL: read them again (still locked).
        self._rows.pop((tenant_id, absorbed), None)
        self._rows.pop((tenant_id, survivor), None)
        self._named.clear()
        self._keys_of.clear()

    # --- keys and history ------------------------------------------------------------------------------------

    async def add_keys(
        self, tenant_id: str, account: str, rid: UUID, keys: Sequence[tuple[str, str]]
    ) -> None:
        self._new_keys += [(tenant_id, account, kind, key, rid) for kind, key in keys]

    async def receivable_keys(self, tenant_id: str, rid: UUID) -> list[str]:
        known = self._keys_of.get((tenant_id, rid))
        if known is None:
            known = self._keys_of[tenant_id, rid] = set(await super().receivable_keys(tenant_id, rid))
        pending = {k[3] for k in self._new_keys if k[0] == tenant_id and k[4] == rid}
        return sorted(known | pending)  # code point order is COLLATE "C" order

    async def resolve(
        self, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[UUID], str | None]:
        wanted = [(tenant_id, account, kind, key) for kind, key in candidates]
        unknown = list(dict.fromkeys(k for k in wanted if k not in self._named))
        if unknown:
            found = await self.conn.fetch(
                """SELECT DISTINCT k.kind, k.key, k.receivable_id FROM matching.receivable_keys k
                   JOIN unnest($3::text[], $4::text[]) AS c(kind, key) ON k.kind = c.kind AND k.key = c.key
                   WHERE k.tenant_id = $1 AND k.account_key = $2""",
                tenant_id,
                account,
                [k[2] for k in unknown],
                [k[3] for k in unknown],
            )
            for k in unknown:
                self._named[k] = set()
            for r in found:
                self._named[tenant_id, account, r["kind"], r["key"]].add(r["receivable_id"])
        for k in wanted:
            ids = self._named[k] | {n[4] for n in self._new_keys if n[:4] == k}
            if ids:
                return sorted(ids), k[2]  # UUIDs order as PostgreSQL orders them (bytewise)
        return [], None

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
        self._history.append((tenant_id, rid, event_id, change, amount, effective, source, status, balance))

    # --- reads that need the batch's writes in the tables ------------------------------------------------

    async def latest_business_date(self, tenant_id: str, rids: Sequence[UUID]) -> date | None:
        await self.flush()
        return await super().latest_business_date(tenant_id, rids)

    async def find_by_key(self, tenant_id: str, payer_id: str, key: str) -> list[UUID]:
        await self.flush()
        return await super().find_by_key(tenant_id, payer_id, key)

    async def open_candidates(self, tenant_id: str, account: str) -> list[Candidate]:
        await self.flush()
        return await super().open_candidates(tenant_id, account)

    async def over_recovered(self, tenant_id: str, rid: UUID) -> Decimal:
        await self.flush()
        return await super().over_recovered(tenant_id, rid)

    # --- writing what was kept back --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything the batch kept back: receivables opened (one ``INSERT``) and changed (one
        ``UPDATE``), then keys and history lines (one ``INSERT`` each). The batch handler calls it last; reads
        that need the rows in the tables call it first."""
        if self._opened:
            await self._write_receivables([self._rows[r] for r in self._opened], insert=True)
            self._changed.difference_update(self._opened)
            self._opened.clear()
        if self._changed:
            await self._write_receivables([self._rows[r] for r in sorted(self._changed)], insert=False)
            self._changed.clear()
        if self._new_keys:
            await self.conn.execute(
                """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[])
                   ON CONFLICT DO NOTHING""",
                *map(list, zip(*self._new_keys, strict=True)),
            )
            for tenant, account, kind, key, rid in self._new_keys:
                self._named.get((tenant, account, kind, key), set()).add(rid)
                self._keys_of.get((tenant, rid), set()).add(key)
            self._new_keys.clear()
        if self._history:
            await self.conn.execute(
                """INSERT INTO matching.receivable_history (tenant_id, receivable_id, event_id, change, amount,
                       effective_date, source, status, balance)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[],
                                        $6::date[], $7::text[], $8::text[], $9::numeric[])
                   ON CONFLICT DO NOTHING""",
                *map(list, zip(*self._history, strict=True)),
            )
            self._history.clear()

    async def _write_receivables(self, kept: Sequence[Receivable], *, insert: bool) -> None:
        if insert:
            await self.conn.execute(
                f"""INSERT INTO matching.receivables ({COLUMNS})
                    SELECT * FROM unnest({UNNESTED})""",  # noqa: S608 (fixed column lists)
                *_columns(kept),
            )
        else:
            await self.conn.execute(
                f"""UPDATE matching.receivables r SET {CHANGED}
                    FROM unnest({UNNESTED}) AS u({COLUMNS})
                    WHERE r.tenant_id = u.tenant_id AND r.receivable_id = u.receivable_id""",  # noqa: S608
                *_columns(kept),
            )
