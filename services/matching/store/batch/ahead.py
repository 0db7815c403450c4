"""Reading ahead what a batch's messages will ask for (``prefetch.wanted``), a few statements per batch: the
keys their pairs may name receivables by, those receivables and the ones named outright (locked, in id order),
their money and keys, the sibling pairs their pairs will look for, and for evidence the account's parked
recoveries and scored guesses and the payer's waiting staff actions."""

from uuid import UUID

from services.matching.records import Receivable
from services.matching.repository import Wanted
from services.matching.store._base import PAIR_COLUMNS, RECEIVABLE_COLUMNS, pair_of, receivable_of
from services.matching.store.batch._state import BatchState, Row


class BatchAhead(BatchState):
    """Read-ahead for one run of one batch."""

    async def prefetch(self, wanted: Wanted) -> None:
        await self.look_up([(t, a, kind, key) for t, a, found in wanted.lookups for kind, key in found])
        named: list[Row] = list(wanted.receivables)
        for tenant, account, candidates in wanted.lookups:
            for kind, key in candidates:
                ids = self.named[tenant, account, kind, key]
                if ids:
                    named += [(tenant, rid) for rid in sorted(ids)]
                    break
        named = [r for r in dict.fromkeys(named) if r not in self.rows]
        if named:
            await self._lock_all(named)
            await self.load_money(named)  # a receivable not found yet has none: opened here, it starts so
            await self.read_keys([r for r in wanted.receivables if r not in self.keys_of])
        await self._siblings_of([s for s in wanted.siblings if s not in self.siblings])
        await self._queues_of([a for a in wanted.accounts if a not in self.parked])
        await self._waiting_of([p for p in wanted.payers if p not in self.waiting])
        await self._deferrals_of([r for r in wanted.remittances if r not in self.deferrals])

    async def _lock_all(self, wanted: list[Row]) -> None:
        """Lock the receivables that exist (in id order, as one worker always takes them) and remember which do
        not."""
        found: dict[Row, Receivable] = {}
        for r in await self.conn.fetch(
            f"""SELECT {RECEIVABLE_COLUMNS} FROM matching.receivables
                WHERE (tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
                ORDER BY tenant_id, receivable_id FOR UPDATE""",  # noqa: S608 (a fixed column list)
            [t for t, _ in wanted],
            [rid for _, rid in wanted],
        ):
            row = receivable_of(r)
            found[row.tenant_id, row.receivable_id] = row
        self.rows.update(found)
        self.absent.update(r for r in wanted if r not in found)

    async def _siblings_of(self, wanted: list[tuple[str, UUID, str, str]]) -> None:
        """The pairs of these (tenant, remittance, reference, reason code), locked as ``sibling_pairs`` locks
        them."""
        if not wanted:
            return
        for asked in wanted:
            self.siblings[asked] = []
        for r in await self.conn.fetch(
            f"""SELECT {PAIR_COLUMNS} FROM matching.adjustments
                WHERE (tenant_id, remittance_id, match_reference, reason_code)
                      IN (SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]))
                ORDER BY tenant_id, remittance_id, segment_ordinal, pair_index FOR UPDATE""",  # noqa: S608
            *map(list, zip(*wanted, strict=True)),
        ):
            [pair] = self.remember([pair_of(r)])
            asked = (pair.tenant_id, pair.remittance_id, pair.match_reference or "", pair.reason_code)
            self.siblings[asked].append(pair)

    async def _queues_of(self, wanted: list[tuple[str, str]]) -> None:
        """These accounts' parked recoveries (locked, as ``parked_recoveries`` locks those it returns) and the
        recoveries the scored search applied (pair keys and receivable)."""
        if not wanted:
            return
        tenants, accounts = [t for t, _ in wanted], [a for _, a in wanted]
        for account in wanted:
            self.parked[account] = []
            self.guessed[account] = []
        for r in await self.conn.fetch(
            f"""SELECT {PAIR_COLUMNS} FROM matching.adjustments
                WHERE (tenant_id, account_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                  AND (unmatched_amount > 0 OR awaiting_refund > 0) AND reason_code = 'WO'
                ORDER BY tenant_id, account_key, adjustment_id FOR UPDATE""",  # noqa: S608 (fixed columns)
            tenants,
            accounts,
        ):
            [pair] = self.remember([pair_of(r)])
            self.parked[pair.tenant_id, pair.account_key].append(pair)
        for r in await self.conn.fetch(
            """SELECT a.tenant_id, a.account_key, a.adjustment_id, a.match_keys, l.receivable_id
               FROM matching.allocations l JOIN matching.adjustments a
                 ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
               WHERE (a.tenant_id, a.account_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 AND l.kind IN ('offset', 'refund') AND l.to_interest + l.to_principal > 0
                 AND a.reason_code = 'WO' AND a.match_method LIKE 'scored:%'""",
            tenants,
            accounts,
        ):
            keys = frozenset(r["match_keys"] or ())
            guess = (keys, r["receivable_id"], r["adjustment_id"])
            self.guessed[r["tenant_id"], r["account_key"]].append(guess)

    async def _waiting_of(self, wanted: list[tuple[str, str]]) -> None:
        """The references these payers' staff actions wait under."""
        if not wanted:
            return
        for payer in wanted:
            self.waiting[payer] = set()
        for r in await self.conn.fetch(
            """SELECT tenant_id, payer_id, reference FROM matching.pending_actions
               WHERE (tenant_id, payer_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [t for t, _ in wanted],
            [p for _, p in wanted],
        ):
            self.waiting[r["tenant_id"], r["payer_id"]].add(r["reference"])

    async def _deferrals_of(self, wanted: list[tuple[str, UUID]]) -> None:
        """The keys of these remittances' negative WO pairs."""
        if not wanted:
            return
        for remittance in wanted:
            self.deferrals[remittance] = []
        for r in await self.conn.fetch(
            """SELECT tenant_id, remittance_id, match_keys FROM matching.adjustments
               WHERE (tenant_id, remittance_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
                 AND reason_code = 'WO' AND amount < 0""",
            [t for t, _ in wanted],
            [rid for _, rid in wanted],
        ):
            self.deferrals[r["tenant_id"], r["remittance_id"]].append(frozenset(r["match_keys"] or ()))
